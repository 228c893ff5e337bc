-- job_cancel: cancel a queued or running job. A queued one also leaves arq's queue and gives
-- back the budget it reserved at submit (a running one's worker does that, stopped by the
-- PUBLISH). A cancelled leader's followers are not cancelled: they queue as jobs of their own.
-- KEYS[1] job hash   KEYS[2] its events   KEYS[3] arq job   KEYS[4] queue   KEYS[5] done
-- KEYS[6] its lease set   KEYS[7] its inflight pointer   KEYS[8] its leader's followers set
-- KEYS[9] its own followers set   KEYS[10], KEYS[11] the spend counters it reserved on
-- (6, 7, 8, 10, 11: any key when the record has none), then four keys per follower in
-- a.followers: its job hash, arq job, queue, notify list
-- ARGV[1] JSON {"job_id", "ttl_ms", "maxlen", "data", "completed_at", "channel", "score",
--   "expires_ms", "notify_max", "lease": bool, "inflight": bool, "leader": id or "",
--   "reserved": bool, "followers": [job ids, as the caller read KEYS[9]]}
-- Returns: the job.cancelled sequence number; 0 already terminal; -1 unknown; -2 the
--   followers changed since the caller read them (read again and retry).
-- requires: jobs enqueue
local a = cjson.decode(ARGV[1])
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return -1 end
if is_terminal(status) then return 0 end
if redis.call('SCARD', KEYS[9]) ~= #a.followers then return -2 end
for _, f in ipairs(a.followers) do
  if redis.call('SISMEMBER', KEYS[9], f) == 0 then return -2 end
end
redis.call('HSET', KEYS[1], 'status', 'cancelled', 'completed_at', a.completed_at)
local seq = append(KEYS[1], KEYS[2], 'job.cancelled', a.data, a.maxlen)
redis.call('PEXPIRE', KEYS[1], a.ttl_ms)
redis.call('PEXPIRE', KEYS[2], a.ttl_ms)
if status == 'queued' then
  redis.call('ZREM', KEYS[4], a.job_id)
  redis.call('DEL', KEYS[3])
  local reserved = redis.call('HGET', KEYS[1], 'reserved_nano')
  if a.reserved and reserved then
    redis.call('DECRBY', KEYS[10], reserved)
    redis.call('DECRBY', KEYS[11], reserved)
    redis.call('HDEL', KEYS[1], 'reserved_nano')
  end
end
if a.leader ~= '' then redis.call('SREM', KEYS[8], a.job_id) end
mark_done(KEYS[5], 'cancelled', a.ttl_ms, KEYS[1], a.job_id, a.lease and KEYS[6],
          a.inflight and KEYS[7])
for i, f in ipairs(a.followers) do
  local k = 11 + 4 * (i - 1)
  if redis.call('HGET', KEYS[k + 1], 'status') == 'queued' then
    enqueue(KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], f, redis.call('HGET', KEYS[k + 1], 'payload'),
            a.score, a.expires_ms, a.notify_max)
    redis.call('HDEL', KEYS[k + 1], 'leader', 'payload')
  end
end
redis.call('DEL', KEYS[9])
redis.call('PUBLISH', a.channel, a.job_id)
return seq
