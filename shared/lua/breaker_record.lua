-- breaker_record: count one call's outcome; open the breaker, or close it after its probe.
-- KEYS[1] the breaker hash   KEYS[2] its calls window   KEYS[3] its failures window
--   (the windows: sorted sets of attempts scored by Redis ms)
-- ARGV[1] one JSON object {"ok": bool, "probe": bool, "member": the attempt's unique id,
--   "failures": consecutive failures that open, "ratio": failure share that opens,
--   "window_ms", "min_calls", "open_ms", "ttl_ms"}; integers as JSON strings, exact
-- Returns: {transition ("opened", "closed" or ""), consecutive failures, calls, fails};
--   calls is -1 when a success found no failure in the window (the calls were not counted).
-- requires: now
local now = now_ms()
local a = cjson.decode(ARGV[1])
local open_ms, ttl = tonumber(a.open_ms), a.ttl_ms
local state = redis.call('HMGET', KEYS[1], 'open_until', 'consecutive')
local open_until = tonumber(state[1] or '0')
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
local consecutive, fails = 0, 0
if a.ok then
  -- the common case, kept cheap: no failure in the window means no ratio to check, and
  -- the failures window is pruned when a failure is counted (its TTL bounds it meanwhile)
  if tonumber(state[2] or '0') > 0 then redis.call('HSET', KEYS[1], 'consecutive', 0) end
  fails = redis.call('ZCOUNT', KEYS[3], '(' .. since, '+inf')
  if fails == 0 then
    redis.call('PEXPIRE', KEYS[2], ttl)
    return {'', 0, -1, 0}
  end
else
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', since)
  redis.call('ZADD', KEYS[3], now, a.member)
  consecutive = redis.call('HINCRBY', KEYS[1], 'consecutive', 1)
  fails = redis.call('ZCARD', KEYS[3])
end
local calls = redis.call('ZCARD', KEYS[2])
if consecutive >= tonumber(a.failures)
    or (calls >= tonumber(a.min_calls) and fails / calls >= a.ratio) then
  redis.call('DEL', KEYS[2], KEYS[3])
  redis.call('HSET', KEYS[1], 'open_until', now + open_ms, 'consecutive', 0)
  redis.call('PEXPIRE', KEYS[1], ttl)
  return {'opened', consecutive, calls, fails}
end
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ttl) end
return {'', consecutive, calls, fails}
