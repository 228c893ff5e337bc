-- lock_renew: extend a lock's life if this holder still has it.
-- KEYS[1] the lock
-- ARGV[1] the holder's token, ARGV[2] the new TTL in milliseconds
-- Returns: 1 when extended, 0 when the lock is gone or someone else's.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
