-- ratelimit_admit: log one request in an API key's sliding window if it has room.
-- KEYS[1] the key's log (sorted set of the requests admitted, scored by Redis TIME in µs)
-- ARGV[1] the limit (requests per window)   ARGV[2] the window (µs)
-- ARGV[3] this request's unique member (a retried call re-adds it, so it counts once)
-- Returns: {allowed (0|1), remaining, µs until a slot frees (0 when the log is empty)}.
-- Calling TIME before writing needs effects replication of scripts (the default since
-- Redis 5). Refusals are not logged, so a full window's reset does not move.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
local allowed = 0
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000))
  count = count + 1
  allowed = 1
end
local reset = 0
if count > 0 then
  -- the entry whose departure frees a slot (when full: the next request fits then)
  local index = math.max(count - limit, 0)
  local entry = redis.call('ZRANGE', KEYS[1], index, index, 'WITHSCORES')
  reset = tonumber(entry[2]) + window - now
end
return {allowed, math.max(limit - count, 0), reset}
