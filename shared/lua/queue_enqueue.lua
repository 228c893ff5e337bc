-- queue_enqueue: enqueue a job that has no job record (ingest, purge).
-- KEYS[1] arq job   KEYS[2] queue (sorted set)   KEYS[3] its notify list
-- ARGV[1] job id   ARGV[2] arq payload   ARGV[3] score (ms)   ARGV[4] arq expires_ms
-- ARGV[5] notify list length
-- Returns: 1 enqueued, 0 a job with this id is already queued.
-- requires: enqueue
return enqueue(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
