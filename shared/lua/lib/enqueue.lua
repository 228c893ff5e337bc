-- lib/enqueue: put a job on an arq queue (arq's key layout) and wake one idle worker.
local function enqueue(job_key, queue, notify, job_id, payload, score, expires_ms, notify_max)
  if not redis.call('SET', job_key, payload, 'PX', expires_ms, 'NX') then return 0 end
  redis.call('ZADD', queue, score, job_id)
  -- the list only ever grows by one here, so trimming is needed only once it is over
  if redis.call('LPUSH', notify, '1') > tonumber(notify_max) then
    redis.call('LTRIM', notify, 0, tonumber(notify_max) - 1)
  end
  return 1
end
