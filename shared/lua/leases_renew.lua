-- leases_renew: push back the expiry of running jobs' concurrency leases (only held ones).
-- KEYS the API keys' lease sets, one per job
-- ARGV[1] TTL (ms), then the job ids, ARGV[i + 1] for KEYS[i]
-- Returns: nothing.
-- requires: now
local expiry = now_ms() + tonumber(ARGV[1])
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], 'XX', expiry, ARGV[i + 1])
  redis.call('PEXPIRE', KEYS[i], ARGV[1])
end
