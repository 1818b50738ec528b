-- requeue_dead: move one dead letter back to the ready stream it came from,
-- as a fresh job (attempt 1).
--
-- KEYS[1] `runq:{Q}:dead`
-- ARGV[1] the dead letter's entry id   ARGV[2] now (Unix ms)
--
-- The entry's own fields go back; the fields the dead-lettering added
-- (`error`, `attempts`, `dead_ms`, `priority`) are dropped, `priority`
-- choosing the stream (normal when absent). The job's record, if any,
-- becomes `queued` again and stops expiring; its done list is cleared.
-- Returns 1, or 0 if there is no such dead letter.
--
-- Why one step: the XADD and the XDEL together move the job exactly once,
-- even when two operators requeue at the same time.
local dead, eid, now = KEYS[1], ARGV[1], ARGV[2]
local prefix = string.match(dead, '^(.*:)[^:]*$')
local e = redis.call('XRANGE', dead, eid, eid)
if #e == 0 then
    return 0
end
local DROP = {error = true, attempts = true, dead_ms = true, priority = true}
local fields, prio = {}, 'normal'
local src = e[1][2]
for i = 1, #src, 2 do
    if src[i] == 'priority' then
        prio = src[i + 1]
    elseif not DROP[src[i]] then
        table.insert(fields, src[i])
        table.insert(fields, src[i + 1])
    end
end
if prio ~= 'high' and prio ~= 'normal' and prio ~= 'low' then
    prio = 'normal'
end
if #fields == 0 then
    redis.call('XDEL', dead, eid)
    return 0
end
local id = field(fields, 'id')
if id and id ~= '' then
    local rec = prefix .. 'job:' .. id
    redis.call('HSET', rec, 'state', 'queued', 'attempt', 1, 'updated_ms', now)
    redis.call('HDEL', rec, 'error', 'result', 'fields')
    redis.call('PERSIST', rec)
    redis.call('DEL', prefix .. 'done:' .. id)
end
redis.call('XADD', prefix .. prio, '*', unpack(fields))
redis.call('XDEL', dead, eid)
return 1
