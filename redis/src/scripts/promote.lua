-- promote: move the due jobs of one queue from its scheduled set to their
-- ready streams.
--
-- KEYS[1] `runq:{Q}:scheduled` (members: job ids; score: due Unix ms)
-- ARGV[1] now (Unix ms)   ARGV[2] how many at most
--
-- The job's record holds what the stream entry needs: `prio` (which
-- stream) and `fields` (the entry's fields, MessagePack). A record that is
-- gone or no longer scheduled/retrying (it was cancelled) is dropped.
--
-- Returns how many jobs were moved.
--
-- Why one step: ZREM and XADD together make promotion exactly once, however
-- many nodes race to promote the same due job; a node dying between the two
-- can neither lose the job nor duplicate it.
local sched, now, limit = KEYS[1], ARGV[1], tonumber(ARGV[2])
local prefix = string.match(sched, '^(.*:)[^:]*$')
local due = redis.call('ZRANGEBYSCORE', sched, '-inf', now, 'LIMIT', 0, limit)
local moved = 0
for _, id in ipairs(due) do
    redis.call('ZREM', sched, id)
    local rec = prefix .. 'job:' .. id
    local r = redis.call('HMGET', rec, 'state', 'prio', 'fields')
    local st, prio, packed = r[1], r[2], r[3]
    if (st == 'scheduled' or st == 'retrying') and prio and packed then
        redis.call('XADD', prefix .. prio, '*', unpack(cmsgpack.unpack(packed)))
        redis.call('HSET', rec, 'state', 'queued', 'updated_ms', now)
        redis.call('HDEL', rec, 'fields')
        moved = moved + 1
    end
end
return moved
