-- cancel: end a job that has not started, for good.
--
-- KEYS[1] the record `runq:{Q}:job:<id>`   KEYS[2] `runq:{Q}:scheduled`
-- ARGV[1] job id   ARGV[2] now (Unix ms)
--
-- A job queued, scheduled (delayed) or waiting for a retry becomes
-- `cancelled` (terminal: done list pushed, key released) and 1 is returned.
-- A queued job's stream entry stays until a node delivers it; the pickup
-- step sees the terminal record and acks it without running. A running or
-- finished job (or an unknown id) returns 0.
--
-- Why one step: the state check and the terminal write must not interleave
-- with a node's pickup (take.lua), which marks the record `running`.
local rec, sched, id, now = KEYS[1], KEYS[2], ARGV[1], ARGV[2]
local prefix = string.match(rec, '^(.*:)job:')
local st = redis.call('HGET', rec, 'state')
if st == 'queued' or st == 'scheduled' or st == 'retrying' then
    redis.call('ZREM', sched, id)
    local ttl = tonumber(redis.call('HGET', rec, 'result_ttl_s') or '') or DEFAULT_RESULT_TTL_S
    finish_record(prefix, id, 'cancelled', 'error', 'cancelled', now, '', ttl)
    return 1
end
return 0
