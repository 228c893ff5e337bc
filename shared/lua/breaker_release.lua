-- breaker_release: give the half-open probe back unused (its holder ended without an outcome).
-- KEYS[1] the breaker hash
-- ARGV[1] the lease breaker_acquire granted (its end, Redis ms)
-- Returns: 1 if the probe slot was freed, 0 if a newer probe holds it (left alone).
if redis.call('HGET', KEYS[1], 'probe_until') == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'probe_until')
  return 1
end
return 0
