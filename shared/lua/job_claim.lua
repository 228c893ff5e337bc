-- job_claim: take a queued job's in-progress lock for this worker (arq's WATCH/MULTI claim
-- in one step) and count it in the queue's drain rate.
-- KEYS[1] the job's arq lock   KEYS[2] the queue (sorted set)   KEYS[3] the drain counter
-- ARGV[1] the job id   ARGV[2] the lock's TTL (ms)   ARGV[3] the worker's clock (ms)
-- ARGV[4] the drain counter's TTL (s)
-- Returns: the job's score, or false when it is not this worker's to run now (another
-- worker holds its lock, it has finished, or it is deferred past ARGV[3]).
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not score or tonumber(score) > tonumber(ARGV[3]) then return false end
redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
redis.call('INCRBY', KEYS[3], 1)
redis.call('EXPIRE', KEYS[3], ARGV[4])
return score
