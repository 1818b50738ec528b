-- enqueue: add one job, written by runq_redis::Client.
--
-- KEYS[1] the ready stream `runq:{Q}:<priority>`
-- KEYS[2] `runq:{Q}:scheduled`   KEYS[3] the record `runq:{Q}:job:<id>`
-- KEYS[4] the idempotency key `runq:{Q}:key:<key>` (unused without a key)
-- ARGV[1] job id   ARGV[2] now (Unix ms)   ARGV[3] due (Unix ms; 0 = now)
-- ARGV[4] `1` if the job has a key   ARGV[5] the key
-- ARGV[6] result TTL (s)   ARGV[7..] the entry's fields, name then value
--
-- Returns {'queued'} or {'scheduled'}; {'dup-id', id} when a job with this
-- id is not terminal yet; {'dup-key', holder} when the key is held by a job
-- that is not terminal yet.
--
-- Why one step: the key check and its claim, the record and the entry (or
-- the scheduled-set member) must appear together: a key held with no job
-- behind it would block that key forever, a job without its record could
-- not be cancelled.
local stream, sched, rec, keykey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, now, due, has_key, key, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[6]
local prefix, prio = split_stream(stream)

local st = redis.call('HGET', rec, 'state')
if st and not TERMINAL[st] then
    return {'dup-id', id}
end
if has_key == '1' then
    local holder = redis.call('GET', keykey)
    if holder then
        return {'dup-key', holder}
    end
    redis.call('SET', keykey, id)
end
local fields = {}
for i = 7, #ARGV do
    table.insert(fields, ARGV[i])
end
redis.call('DEL', rec, prefix .. 'done:' .. id)
redis.call('HSET', rec, 'state', 'queued', 'attempt', 1, 'updated_ms', now, 'prio', prio,
    'type', field(fields, 'type') or '', 'result_ttl_s', ttl)
if has_key == '1' then
    redis.call('HSET', rec, 'key', key)
end
if due > tonumber(now) then
    redis.call('HSET', rec, 'state', 'scheduled', 'fields', cmsgpack.pack(fields))
    redis.call('ZADD', sched, due, id)
    return {'scheduled'}
end
redis.call('XADD', stream, '*', unpack(fields))
return {'queued'}
