-- documents_publish: make a document's pending version the visible one and move the
-- tenant's corpus version in the same step, so no cached answer outlives the old text.
-- KEYS[1] the document's record (hash)   KEYS[2] the tenant's corpus version (counter)
-- ARGV[1] the version to publish   ARGV[2] indexed_at   ARGV[3] chunks
-- ARGV[4] the status a published document has
-- Returns: the replaced version ('' if none), or false when ARGV[1] is no longer the
-- pending version (posted again or deleted meanwhile): then nothing is written.
if redis.call('HGET', KEYS[1], 'pending_version') ~= ARGV[1] then return false end
local old = redis.call('HGET', KEYS[1], 'version') or ''
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'pending_version', '', 'status', ARGV[4],
  'indexed_at', ARGV[2], 'chunks', ARGV[3], 'error', '')
redis.call('INCR', KEYS[2])
return old
