-- job_note: set record fields of a job that is not terminal (no event).
-- KEYS[1] the job hash
-- ARGV field/value pairs
-- Returns: nothing.
-- requires: jobs
local status = redis.call('HGET', KEYS[1], 'status')
if status and not is_terminal(status) then redis.call('HSET', KEYS[1], unpack(ARGV)) end
