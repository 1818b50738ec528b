-- dead_letter: move a malformed entry (missing id or type, a type no
-- handler knows, a bad number) out of its stream into the dead letters, so
-- it never blocks the stream nor crashes a node.
--
-- KEYS[1] the stream `runq:{Q}:<priority>`   KEYS[2] `runq:{Q}:dead`
-- ARGV[1] consumer group   ARGV[2] entry id   ARGV[3] error text
-- ARGV[4] now (Unix ms)    ARGV[5] node name
--
-- When the entry has an id, its record becomes `dead` with the error (a
-- waiter learns of it). Returns 1, or 0 if the entry was no longer pending.
--
-- Why one step: the ack and the dead letter (and record) must be written
-- together, or a crash in between would lose the entry or keep it forever.
local stream, dead = KEYS[1], KEYS[2]
local group, eid, err, now, node = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local prefix, prio = split_stream(stream)
local e = redis.call('XRANGE', stream, eid, eid)
if ack(stream, group, eid) == 0 or #e == 0 then
    return 0
end
local fields = e[1][2]
local id = field(fields, 'id')
if id and id ~= '' then
    local st = redis.call('HGET', prefix .. 'job:' .. id, 'state')
    if not (st and TERMINAL[st]) then
        finish_record(prefix, id, 'dead', 'error', err, now, node, ttl_of(fields))
    end
end
table.insert(fields, 'error')
table.insert(fields, err)
table.insert(fields, 'attempts')
table.insert(fields, '0')
table.insert(fields, 'dead_ms')
table.insert(fields, now)
table.insert(fields, 'priority')
table.insert(fields, prio)
redis.call('XADD', dead, '*', unpack(fields))
return 1
