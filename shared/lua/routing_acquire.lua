-- routing_acquire: the first candidate endpoint under the bounded-load cap, counted busier by one.
-- KEYS[1..n] the candidates' in-flight sets (members: calls, scored by their lease's end,
--   Redis ms), in walk order
-- ARGV[1] the load factor in units of 1/ARGV[4]   ARGV[2] the lease (ms)
-- ARGV[3] this call's member   ARGV[4] the load factor's unit (so the cap's ceiling is exact)
-- Returns: {position in KEYS (0-based), its in-flight count with this call, the candidates'
-- total with this call, the cap}.
-- requires: now
local now = now_ms()
local n, counts, total = #KEYS, {}, 0
for i = 1, n do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  counts[i] = redis.call('ZCARD', KEYS[i])
  total = total + counts[i]
end
local factor, lease, unit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[4])
local cap = math.floor((factor * (total + 1) + unit * n - 1) / (unit * n))
local chosen = 1
for i = 1, n do
  if counts[i] + 1 <= cap then chosen = i break end
end
redis.call('ZADD', KEYS[chosen], now + lease, ARGV[3])
redis.call('PEXPIRE', KEYS[chosen], lease)
return {chosen - 1, counts[chosen] + 1, total + 1, cap}
