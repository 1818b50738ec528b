-- finish: record the outcome of one run and ack its entry, in one step.
--
-- KEYS[1] the entry's stream `runq:{Q}:<priority>`
-- KEYS[2] `runq:{Q}:scheduled`   KEYS[3] `runq:{Q}:dead`
-- ARGV[1] consumer group   ARGV[2] entry id   ARGV[3] job id
-- ARGV[4] outcome: `ok` (ARGV[5] = result), `err` (ARGV[5] = error),
--         `release` (not started: put back for any node)
-- ARGV[6] now (Unix ms)    ARGV[7] node name   ARGV[8] result TTL (s)
-- ARGV[9] attempts in all  ARGV[10] backoff base (ms)   ARGV[11] this attempt
--
-- Returns `succeeded`, `retrying`, `failed`, `released`, or `stale` when the
-- entry was no longer pending (an earlier try of this same step, replayed
-- after a lost connection, already did the work).
--
-- Why one step: an entry is acked only together with the write that makes
-- it safe to forget: a terminal state (plus the done list and the key
-- release), a retry parked in the scheduled set, or a fresh copy of the
-- entry. A crash between the two would either lose the job or run it again
-- after it was recorded.
local stream, sched, dead = KEYS[1], KEYS[2], KEYS[3]
local group, eid, id, outcome, value = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local now, node, ttl = ARGV[6], ARGV[7], tonumber(ARGV[8])
local attempts, backoff, attempt = tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])
-- Longest wait before a retry: an hour (a bound against overflow of
-- backoff * 2^attempt, not a tuning value).
local MAX_BACKOFF_MS = 3600000

local prefix, prio = split_stream(stream)
local entry = redis.call('XRANGE', stream, eid, eid)
if redis.call('XACK', stream, group, eid) == 0 then
    redis.call('XDEL', stream, eid)
    return 'stale'
end
redis.call('XDEL', stream, eid)
local fields = {}
if #entry > 0 then
    fields = entry[1][2]
end
local rec = prefix .. 'job:' .. id

if outcome == 'ok' then
    finish_record(prefix, id, 'succeeded', 'result', value, now, node, ttl)
    return 'succeeded'
elseif outcome == 'release' then
    if #fields > 0 then
        redis.call('XADD', stream, '*', unpack(fields))
    end
    redis.call('HSET', rec, 'state', 'queued', 'updated_ms', now)
    return 'released'
end

if attempt < attempts then
    local delay = backoff * math.pow(2, attempt - 1)
    if delay > MAX_BACKOFF_MS then
        delay = MAX_BACKOFF_MS
    end
    redis.call('HSET', rec, 'state', 'retrying', 'attempt', attempt + 1, 'error', value,
        'updated_ms', now, 'node', node, 'prio', prio, 'fields', cmsgpack.pack(fields))
    redis.call('ZADD', sched, tonumber(now) + math.floor(delay), id)
    return 'retrying'
end
finish_record(prefix, id, 'failed', 'error', value, now, node, ttl)
table.insert(fields, 'error')
table.insert(fields, value)
table.insert(fields, 'attempts')
table.insert(fields, tostring(attempt))
table.insert(fields, 'dead_ms')
table.insert(fields, now)
table.insert(fields, 'priority')
table.insert(fields, prio)
redis.call('XADD', dead, '*', unpack(fields))
return 'failed'
