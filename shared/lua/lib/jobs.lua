-- lib/jobs: helpers of the job scripts (job_submit, job_append, job_cancel, job_note).

-- Append events ({{name, data}, ...}) with the next sequence numbers, taken in one step;
-- each one's data gets "sequence_number" first. Returns the last number.
local function append_all(job, events, list, maxlen)
  local last = redis.call('HINCRBY', job, 'seq', #list)
  for i, event in ipairs(list) do
    local seq, data = last - #list + i, event[2]
    local body
    if data == '{}' then
      body = '{"sequence_number":' .. seq .. '}'
    else
      body = '{"sequence_number":' .. seq .. ',' .. string.sub(data, 2)
    end
    redis.call('XADD', events, 'MAXLEN', '~', maxlen, '0-' .. seq, 'event', event[1], 'data', body)
  end
  return last
end

-- Append one event with the next sequence number.
local function append(job, events, name, data, maxlen)
  return append_all(job, events, {{name, data}}, maxlen)
end

local function is_terminal(status)
  return status == 'completed' or status == 'failed' or status == 'cancelled'
end

-- One entry when the job ends: waiters block on this, not on every token. The job's
-- concurrency lease (`lease`, a key or false) and its coalescing slot (`inflight`, a key
-- or false) are released in the same step.
local function mark_done(done, status, ttl, job, id, lease, inflight)
  redis.call('XADD', done, '0-1', 'status', status)
  redis.call('PEXPIRE', done, ttl)
  redis.call('HDEL', job, 'pending_result')  -- a re-run's shortcut, needless from now on
  if lease then redis.call('ZREM', lease, id) end
  if inflight and redis.call('GET', inflight) == id then redis.call('DEL', inflight) end
end

-- Set fields of a job hash from a {field: value} table (nothing when it is empty).
local function set_fields(job, fields)
  local flat = {}
  for name, value in pairs(fields) do
    flat[#flat + 1] = name
    flat[#flat + 1] = value
  end
  if #flat > 0 then redis.call('HSET', job, unpack(flat)) end
end

-- Count a finished job in its tenant's usage of the day ({counter: increment}).
local function count_usage(usage, counts, ttl_s)
  local counted = false
  for counter, increment in pairs(counts) do
    if tonumber(increment) ~= 0 then
      redis.call('HINCRBY', usage, counter, increment)
      counted = true
    end
  end
  if counted then redis.call('EXPIRE', usage, ttl_s) end
end
