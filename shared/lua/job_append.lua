-- job_append: append events to a job (unless it is terminal) and set record fields; when
-- the last event is terminal (job.completed, job.failed), mark the job done and count it in
-- the tenant's usage in the same step, so a crash can neither leave a finished job
-- uncounted nor split a completion's events (answer.completed, job.completed) in two.
-- KEYS[1] job hash   KEYS[2] its events   KEYS[3] its done stream   KEYS[4] tenant's usage
-- KEYS[5] its concurrency lease set   KEYS[6] its inflight pointer (5, 6: any key when unused)
-- ARGV[1] JSON {"job_id", "ttl_ms" (0: keep the expiry as it is), "maxlen", "usage_ttl_s", "events": [[name, data], ...],
--   "usage": {counter: increment}, "fields": {field: value}, "lease": bool, "inflight": bool}
-- Returns: the last new sequence number; 0 when the job is already terminal; -1 when gone.
-- requires: jobs
local a = cjson.decode(ARGV[1])
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return -1 end
if is_terminal(status) then return 0 end
set_fields(KEYS[1], a.fields)
local seq, last = 0, nil
if #a.events > 0 then
  seq = append_all(KEYS[1], KEYS[2], a.events, a.maxlen)
  last = a.events[#a.events][1]
end
if a.ttl_ms > 0 then
  redis.call('PEXPIRE', KEYS[1], a.ttl_ms)
  redis.call('PEXPIRE', KEYS[2], a.ttl_ms)
end
if last == 'job.completed' or last == 'job.failed' then
  mark_done(KEYS[3], string.sub(last, 5), a.ttl_ms, KEYS[1], a.job_id,
            a.lease and KEYS[5], a.inflight and KEYS[6])
  count_usage(KEYS[4], a.usage, a.usage_ttl_s)
end
return seq
