-- breaker_acquire: may a call go to this endpoint now (closed, open, or the half-open probe)?
-- KEYS[1] the breaker hash (open_until, probe_until: Redis ms)
-- ARGV[1] the probe's lease (ms)   ARGV[2] the hash's TTL (ms)
-- Returns: {"allowed", 0}; {"open", ms until that may change}; or {"probe", the lease's end
-- (Redis ms)}, which names this probe for breaker_release.
-- requires: now
local now = now_ms()
local state = redis.call('HMGET', KEYS[1], 'open_until', 'probe_until')
local open_until = tonumber(state[1] or '0')
if open_until == 0 then return {'allowed', 0} end
if now < open_until then return {'open', open_until - now} end
local probe_until = tonumber(state[2] or '0')
if now < probe_until then return {'open', probe_until - now} end
local lease = now + tonumber(ARGV[1])
redis.call('HSET', KEYS[1], 'probe_until', lease)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {'probe', lease}
