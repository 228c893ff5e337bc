-- breaker_record: count one call's outcome; open the breaker, or close it after its probe.
-- KEYS[1] the breaker hash   KEYS[2] its calls window   KEYS[3] its failures window
--   (the windows: sorted sets of attempts scored by Redis ms)
-- ARGV[1] one JSON object {"ok": bool, "probe": bool, "member": the attempt's unique id,
--   "failures": consecutive failures that open, "ratio": failure share that opens,
--   "window_ms", "min_calls", "open_ms", "ttl_ms"}; integers as JSON strings, exact
-- Returns: {transition ("opened", "closed" or ""), consecutive failures, calls, fails}.
-- requires: now
local now = now_ms()
local a = cjson.decode(ARGV[1])
local open_ms, ttl = tonumber(a.open_ms), a.ttl_ms
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
if open_until > 0 then
  if a.probe and now >= open_until then
    if a.ok then
      redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
      return {'closed', 0, 0, 0}
    end
    redis.call('HSET', KEYS[1], 'open_until', now + open_ms)
    redis.call('HDEL', KEYS[1], 'probe_until')
    redis.call('PEXPIRE', KEYS[1], ttl)
    return {'opened', 0, 0, 0}
  end
  -- a call admitted before the breaker opened: its outcome no longer matters
  return {'', 0, 0, 0}
end
local since = now - tonumber(a.window_ms)
redis.call('ZADD', KEYS[2], now, a.member)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', since)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', since)
local consecutive = 0
if a.ok then
  redis.call('HSET', KEYS[1], 'consecutive', 0)
else
  redis.call('ZADD', KEYS[3], now, a.member)
  consecutive = redis.call('HINCRBY', KEYS[1], 'consecutive', 1)
end
local calls = redis.call('ZCARD', KEYS[2])
local fails = redis.call('ZCARD', KEYS[3])
if consecutive >= tonumber(a.failures)
    or (calls >= tonumber(a.min_calls) and fails / calls >= a.ratio) then
  redis.call('DEL', KEYS[2], KEYS[3])
  redis.call('HSET', KEYS[1], 'open_until', now + open_ms, 'consecutive', 0)
  redis.call('PEXPIRE', KEYS[1], ttl)
  return {'opened', consecutive, calls, fails}
end
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ttl) end
return {'', consecutive, calls, fails}
