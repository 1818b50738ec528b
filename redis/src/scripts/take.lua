-- take: read up to ARGV[4] new entries for this node, strictly in the order
-- of KEYS (the node passes every high stream, then every normal, then every
-- low), and start each one (common.lua `start_entry`).
--
-- KEYS: the ready streams `runq:{Q}:high|normal|low`, highest priority first
-- ARGV[1] consumer group (`runq`)   ARGV[2] consumer (this node)
-- ARGV[3] now (Unix ms)             ARGV[4] how many entries at most
-- ARGV[5] node name for job records
--
-- Returns {stream_index, entry_id, fields, decision, attempt} per entry.
--
-- Why one step: reading a lower stream only when the higher ones are empty
-- is what makes priority strict, and marking each record `running` in the
-- same step as its delivery means a cancel either wins before the delivery
-- (the job is skipped) or sees `running` (and reports it cannot cancel).
-- One round trip per batch, however many streams are read.
local group, consumer, now, want, node = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local out = {}
for i = 1, #KEYS do
    if want <= 0 then
        break
    end
    local res = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', want,
        'STREAMS', KEYS[i], '>')
    if res then
        for _, e in ipairs(res[1][2]) do
            local d = start_entry(KEYS[i], group, e[1], e[2], now, node)
            table.insert(out, {i, e[1], e[2], d[1], d[2] or 0})
            want = want - 1
        end
    end
end
return out
