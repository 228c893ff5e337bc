-- documents_set_status: set the status (and error) of a document's pending version.
-- KEYS[1] the document's record (hash)
-- ARGV[1] the pending version   ARGV[2] its new status   ARGV[3] the error ('' for none)
-- ARGV[4] '1' to drop the pending version as well (it will never be published), else '0'
-- Returns: 1, or 0 when ARGV[1] is no longer the pending version: then nothing is written.
if redis.call('HGET', KEYS[1], 'pending_version') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'error', ARGV[3])
if ARGV[4] == '1' then redis.call('HSET', KEYS[1], 'pending_version', '') end
return 1
