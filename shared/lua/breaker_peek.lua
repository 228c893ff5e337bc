-- breaker_peek: how long each breaker stays open, read-only (no probe is taken).
-- KEYS[1..n] breaker hashes
-- Returns: a list of n ms, one per key: until its open period ends (0: closed or half-open).
-- requires: now
local now = now_ms()
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = math.max(tonumber(redis.call('HGET', key, 'open_until') or '0') - now, 0)
end
return out
