-- reclaim: take over the entries of one stream whose lease ran out (idle
-- longer than the lease: their node died, hung, or lost Redis), or
-- dead-letter them when they were delivered too often.
--
-- KEYS[1] the stream `runq:{Q}:<priority>`   KEYS[2] `runq:{Q}:dead`
-- ARGV[1] consumer group   ARGV[2] consumer (this node)
-- ARGV[3] lease (ms): the idle time that makes an entry claimable
-- ARGV[4] how many at most   ARGV[5] max_deliveries
-- ARGV[6] now (Unix ms)      ARGV[7] node name
--
-- For each entry idle longer than the lease:
--   * already delivered max_deliveries times: it keeps killing its node.
--     Ack it, write the record `dead`, add it to the dead letters.
--   * otherwise XCLAIM it (the delivery count goes up) and start it
--     (common.lua `start_entry`).
-- Returns {entry_id, fields, decision, attempt} per claimed entry.
--
-- Why one step: the delivery count read by XPENDING, the claim and the
-- pickup must not interleave with another node's reclaim of the same entry,
-- or both would run it; the dead-lettering must ack and record together.
local stream, dead = KEYS[1], KEYS[2]
local group, consumer, lease, count = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local max, now, node = tonumber(ARGV[5]), ARGV[6], ARGV[7]
local prefix, prio = split_stream(stream)
local out = {}
local pending = redis.call('XPENDING', stream, group, 'IDLE', lease, '-', '+', count)
for _, p in ipairs(pending) do
    local eid, deliveries = p[1], tonumber(p[4])
    local e = redis.call('XRANGE', stream, eid, eid)
    if #e == 0 then
        -- Deleted without an ack: nothing left to run.
        redis.call('XACK', stream, group, eid)
    elseif deliveries >= max then
        local fields = e[1][2]
        local id = field(fields, 'id')
        local msg = 'delivered ' .. deliveries .. ' times without finishing (max_deliveries ' .. max .. ')'
        ack(stream, group, eid)
        local st = nil
        if id and id ~= '' then
            st = redis.call('HGET', prefix .. 'job:' .. id, 'state')
        end
        if not (st and TERMINAL[st]) then
            local attempt = '0'
            if id and id ~= '' then
                attempt = redis.call('HGET', prefix .. 'job:' .. id, 'attempt') or '0'
                finish_record(prefix, id, 'dead', 'error', msg, now, node, ttl_of(fields))
            end
            table.insert(fields, 'error')
            table.insert(fields, msg)
            table.insert(fields, 'attempts')
            table.insert(fields, attempt)
            table.insert(fields, 'dead_ms')
            table.insert(fields, now)
            table.insert(fields, 'priority')
            table.insert(fields, prio)
            redis.call('XADD', dead, '*', unpack(fields))
        end
    else
        local c = redis.call('XCLAIM', stream, group, consumer, lease, eid)
        if #c > 0 and c[1] then
            local d = start_entry(stream, group, eid, c[1][2], now, node)
            table.insert(out, {eid, c[1][2], d[1], d[2] or 0})
        end
    end
end
return out
