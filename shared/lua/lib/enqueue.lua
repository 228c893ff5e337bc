-- lib/enqueue: put a job on an arq queue (arq's key layout) and wake one idle worker.
local function enqueue(job_key, queue, notify, job_id, payload, score, expires_ms, notify_max)
  if redis.call('EXISTS', job_key) == 1 then return 0 end
  redis.call('SET', job_key, payload, 'PX', expires_ms)
  redis.call('ZADD', queue, score, job_id)
  redis.call('LPUSH', notify, '1')
  redis.call('LTRIM', notify, 0, tonumber(notify_max) - 1)
  return 1
end
