-- start: the pickup step (common.lua `start_entry`) for entries this node
-- received from a blocking XREADGROUP, which cannot run inside a script.
--
-- KEYS[1] the stream the entries came from (`runq:{Q}:<priority>`)
-- ARGV[1] consumer group   ARGV[2] now (Unix ms)   ARGV[3] node name
-- ARGV[4..] entry ids
--
-- Returns {entry_id, fields, decision, attempt} per entry still in the
-- stream (an entry acked meanwhile is left out).
--
-- Why one step: checking the record and marking it `running` must not
-- interleave with a cancel or with another node's terminal write.
local stream, group, now, node = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local out = {}
for i = 4, #ARGV do
    local e = redis.call('XRANGE', stream, ARGV[i], ARGV[i])
    if #e > 0 then
        local d = start_entry(stream, group, ARGV[i], e[1][2], now, node)
        table.insert(out, {ARGV[i], e[1][2], d[1], d[2] or 0})
    end
end
return out
