-- job_submit: admit, record, announce `job.queued` and enqueue a job in one step, with every
-- admission check (concurrency cap, queue depth and estimated wait, budget) made before
-- anything is written.
-- KEYS[1] job hash   KEYS[2] its events   KEYS[3] arq job   KEYS[4] queue   KEYS[5] notify
-- KEYS[6] the API key's lease set   KEYS[7] service spend   KEYS[8] tenant spend
-- KEYS[9] the request's inflight pointer   KEYS[10] tenant's usage of the day
-- KEYS[11] the request's answer pointer   KEYS[12] the expected leader's job hash
-- KEYS[13] its followers set   KEYS[14] the workers hash (heartbeats)   KEYS[15] its done
-- stream   KEYS[16..] the queue's drain counters of the window
-- (keys a mode does not use may be any key)
-- ARGV[1] JSON {"job_id", "ttl_ms", "maxlen", "event", "payload", "score", "expires_ms",
--   "notify_max", "mode": queue|coalesce|cached, "leader" (the inflight pointer's job id
--   when the caller read it, "" if none), "max_depth" (0: none), "max_wait_s" (0: none),
--   "wait_ratio" (0: none), "queue" (its name in heartbeats), "fresh_ms" (a heartbeat older
--   is a dead worker's), "bucket_s" (the drain counters' bucket), "max_retry_after_s", "max_concurrent"
--   (0: none), "lease_ttl_ms", "reserve_nano" (0: none), "service_cap", "tenant_cap",
--   "spend_ttl_s", "record": {field: value}, "finish" (mode cached: the job completes in
--   this same step): {"events": [[name, data], ...], "fields": {field: value},
--   "usage": {counter: increment}} or absent}
-- Returns: {'ok'|'coalesced'|'cached', seq}, {'overloaded'|'concurrency', retry_after},
--   {'overloaded_wait', retry_after, the wait limit in seconds}, {'budget', scope}, {'exists', 0}, {'cached_now', 0} (an identical request finished
--   since the caller's cache lookup: look again) or {'moved', 0} (the inflight pointer is
--   no longer a.leader: read it again).
-- requires: jobs enqueue reserve now
local a = cjson.decode(ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 1 then return {'exists', 0} end
local now = now_ms()
local mode = a.mode
local max_conc = tonumber(a.max_concurrent)
if mode ~= 'cached' and max_conc > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now)
  if redis.call('ZCARD', KEYS[6]) >= max_conc then return {'concurrency', 1} end
end
local leader = false
if mode == 'coalesce' then
  local running = redis.call('GET', KEYS[9])
  if (running or '') ~= a.leader then return {'moved', 0} end
  if running then
    local status = redis.call('HGET', KEYS[12], 'status')
    if status == 'queued' or status == 'in_progress' then leader = running end
  end
  if not leader and redis.call('EXISTS', KEYS[11]) == 1 then return {'cached_now', 0} end
end
local reserve_nano = tonumber(a.reserve_nano)
if mode ~= 'cached' and not leader then
  local max_depth = tonumber(a.max_depth)
  local max_wait = tonumber(a.max_wait_s)
  local depth = redis.call('ZCARD', KEYS[4])
  local full = max_depth > 0 and depth >= max_depth
  if full or (max_wait > 0 and depth > 0) then
    -- the drain rate: jobs taken per second of the window's busy buckets (those that took
    -- any; the current one counts only its elapsed part), so a queue busy for 5 s of the
    -- window is measured at its rate in those 5 s, not spread over the whole window
    local drained, busy_s, retry = 0, 0, tonumber(a.max_retry_after_s)
    local bucket_s = tonumber(a.bucket_s)
    for i = 16, #KEYS do
      local taken = tonumber(redis.call('GET', KEYS[i]) or '0')
      drained = drained + taken
      if taken > 0 then
        busy_s = busy_s + (i == #KEYS and math.max(1, (now / 1000) % bucket_s) or bucket_s)
      end
    end
    -- the live workers' slots for this queue: arq keeps a running job in the queue until
    -- it ends, so the jobs ahead of a new one are those beyond the slots
    local slots = 0
    if max_wait > 0 then
      local fresh = now - tonumber(a.fresh_ms)
      for _, beat in ipairs(redis.call('HVALS', KEYS[14])) do
        local ok, b = pcall(cjson.decode, beat)
        if ok and type(b) == 'table' and tonumber(b.ts or 0) * 1000 >= fresh
           and type(b.queues) == 'table' then
          for _, q in ipairs(b.queues) do
            if q == a.queue then slots = slots + (tonumber(b.slots) or 0) end
          end
        end
      end
    end
    -- the estimated wait of a job queued now: the queue ahead of it, drained at that rate;
    -- the limit is the lower of max_wait and wait_ratio times the time a job takes
    -- (slots / drain rate: every slot busy, as it is when jobs wait)
    local wait = drained > 0 and math.max(0, depth - slots) * busy_s / drained or -1
    local ratio = tonumber(a.wait_ratio)
    if ratio > 0 and slots > 0 and drained > 0 then
      max_wait = math.min(max_wait, ratio * slots * busy_s / drained)
    end
    if full then  -- Retry-After: the time the queue takes to drain at the window's rate
      if drained > 0 then
        local drain_s = math.ceil(depth * tonumber(a.drain_window_s) / drained)
        retry = math.max(1, math.min(retry, drain_s))
      end
      return {'overloaded', retry}
    end
    if wait > max_wait then
      local retry_s = math.max(1, math.min(retry, math.ceil(wait - max_wait)))
      return {'overloaded_wait', retry_s, string.format('%.1f', max_wait)}
    end
  end
  if reserve_nano > 0 then
    local outcome = reserve(KEYS[7], KEYS[8], reserve_nano, a.service_cap, a.tenant_cap,
                            a.spend_ttl_s)
    if outcome ~= 'ok' then return {'budget', outcome} end
  end
end
-- the record in one HSET: the caller's fields, and those of the mode taken here
local fields = a.record
fields.seq = 0
if leader then
  fields.leader, fields.payload = leader, a.payload
elseif mode ~= 'cached' then
  if mode == 'coalesce' then fields.inflight = KEYS[9] end
  if reserve_nano > 0 then
    fields.reserved_nano, fields.spend_keys = reserve_nano, KEYS[7] .. ' ' .. KEYS[8]
  end
end
if mode ~= 'cached' and max_conc > 0 then fields.lease = KEYS[6] end
set_fields(KEYS[1], fields)
if leader then
  redis.call('SADD', KEYS[13], a.job_id)
  redis.call('PEXPIRE', KEYS[13], a.ttl_ms)
elseif mode ~= 'cached' then
  enqueue(KEYS[3], KEYS[4], KEYS[5], a.job_id, a.payload, a.score, a.expires_ms, a.notify_max)
  if mode == 'coalesce' then redis.call('SET', KEYS[9], a.job_id, 'PX', a.expires_ms) end
end
if mode ~= 'cached' and max_conc > 0 then
  redis.call('ZADD', KEYS[6], now + tonumber(a.lease_ttl_ms), a.job_id)
  redis.call('PEXPIRE', KEYS[6], a.lease_ttl_ms)
end
local seq = append(KEYS[1], KEYS[2], 'job.queued', a.event, a.maxlen)
redis.call('PEXPIRE', KEYS[1], a.ttl_ms)
redis.call('PEXPIRE', KEYS[2], a.ttl_ms)
-- the day's usage hash gets its TTL from whichever write creates it (every writer sets
-- one), so a request that is not the day's first need not set it again
if redis.call('HINCRBY', KEYS[10], 'requests', 1) == 1 then
  redis.call('EXPIRE', KEYS[10], a.spend_ttl_s)
end
if leader then return {'coalesced', seq} end
if mode == 'cached' then
  local finish = a.finish
  if finish then  -- the answer is known: complete the job now, as job_append would
    set_fields(KEYS[1], finish.fields)
    seq = append_all(KEYS[1], KEYS[2], finish.events, a.maxlen)
    mark_done(KEYS[15], 'completed', a.ttl_ms, KEYS[1], a.job_id, false, false)
    count_usage(KEYS[10], finish.usage, a.spend_ttl_s)
  end
  return {'cached', seq}
end
return {'ok', seq}
