-- coalescing_seal: stop new identical requests attaching to a leader; who attached so far.
-- KEYS[1] the request's inflight pointer   KEYS[2] the leader's followers set
-- ARGV[1] the leader's job id
-- Returns: the follower job ids.
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return redis.call('SMEMBERS', KEYS[2])
