-- forget_consumers: remove consumers of one stream's group that hold
-- nothing and have not read for a long time (nodes that died or left), so
-- the group's consumer list (what `runq-redis stats` shows) does not grow
-- with every node ever started.
--
-- KEYS[1] the stream `runq:{Q}:<priority>`
-- ARGV[1] consumer group   ARGV[2] idle time (ms) after which an empty
-- consumer is forgotten
--
-- Returns how many consumers were removed.
--
-- Why one step: XGROUP DELCONSUMER drops the consumer's pending entries
-- with it, and an entry dropped from the pending list is never delivered
-- again. Checking `pending == 0` and deleting in one script means no claim
-- can hand the consumer an entry in between. (A live node that was merely
-- idle on this stream is re-created by its next read.)
local stream, group, idle = KEYS[1], ARGV[1], tonumber(ARGV[2])
local removed = 0
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', stream, group)) do
    local name, pending, c_idle = nil, nil, nil
    for i = 1, #c, 2 do
        if c[i] == 'name' then
            name = c[i + 1]
        elseif c[i] == 'pending' then
            pending = tonumber(c[i + 1])
        elseif c[i] == 'idle' then
            c_idle = tonumber(c[i + 1])
        end
    end
    if name and pending == 0 and c_idle and c_idle > idle then
        redis.call('XGROUP', 'DELCONSUMER', stream, group, name)
        removed = removed + 1
    end
end
return removed
