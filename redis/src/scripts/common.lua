-- Shared helpers, prepended to every script of this folder (see scripts.rs).
-- Nothing here runs on its own: it defines local functions only.
--
-- Every key of queue Q starts `runq:{Q}:` (one hash slot per queue). A
-- script receives its streams in KEYS and derives the other keys of the same
-- queue (job records, done lists, idempotency keys) from that prefix, so
-- they all live in the declared keys' slot.

local TERMINAL = {succeeded = true, failed = true, dead = true, expired = true, cancelled = true}
-- Wire format v1: default time a terminal record is kept.
local DEFAULT_RESULT_TTL_S = 86400

-- `runq:{Q}:normal` -> `runq:{Q}:`, `normal`
local function split_stream(stream)
    local prefix, prio = string.match(stream, '^(.*:)([^:]*)$')
    return prefix, prio
end

-- The value of `name` in a flat field list {f1, v1, f2, v2, ...}, or nil.
local function field(fields, name)
    for i = 1, #fields, 2 do
        if fields[i] == name then
            return fields[i + 1]
        end
    end
    return nil
end

local function ttl_of(fields)
    local t = tonumber(field(fields, 'result_ttl_s') or '')
    if t and t >= 1 then
        return math.floor(t)
    end
    return DEFAULT_RESULT_TTL_S
end

-- Writes a terminal state for job `id` of the queue at `prefix`: the record
-- gets `state`, `updated_ms`, `node` and `extra_field` (result or error),
-- and expires after `ttl` seconds; the state's name is pushed onto the done
-- list (same expiry) for BLPOP waiters; the job's idempotency key is
-- released if it still points at this job.
local function finish_record(prefix, id, state, extra_field, extra_value, now, node, ttl)
    local rec = prefix .. 'job:' .. id
    redis.call('HSET', rec, 'state', state, 'updated_ms', now, 'node', node)
    if extra_field then
        redis.call('HSET', rec, extra_field, extra_value)
    end
    redis.call('HDEL', rec, 'fields')
    redis.call('EXPIRE', rec, ttl)
    local done = prefix .. 'done:' .. id
    redis.call('DEL', done)
    redis.call('RPUSH', done, state)
    redis.call('EXPIRE', done, ttl)
    local key = redis.call('HGET', rec, 'key')
    if key then
        local kk = prefix .. 'key:' .. key
        if redis.call('GET', kk) == id then
            redis.call('DEL', kk)
        end
    end
end

-- Acks and deletes stream entry `eid`: the only way an entry leaves a stream.
local function ack(stream, group, eid)
    local n = redis.call('XACK', stream, group, eid)
    redis.call('XDEL', stream, eid)
    return n
end

-- The pickup step for one delivered entry, in the same script as its
-- delivery or claim, so a job is never marked running twice by mistake and
-- never runs after it was cancelled:
--   * a record already terminal (succeeded, cancelled, ...): ack, {'skip', state}
--   * a deadline already past: write `expired`, ack, {'expired'}
--   * otherwise mark the record running on `node`: {'run', attempt}
-- An entry without an id is returned as {'run', 1}; the node dead-letters it.
local function start_entry(stream, group, eid, fields, now, node)
    local prefix, prio = split_stream(stream)
    local id = field(fields, 'id')
    if not id or id == '' then
        return {'run', 1}
    end
    local rec = prefix .. 'job:' .. id
    local st = redis.call('HGET', rec, 'state')
    if st and TERMINAL[st] then
        ack(stream, group, eid)
        return {'skip', st}
    end
    local deadline = tonumber(field(fields, 'deadline_ms') or '')
    if deadline and deadline < tonumber(now) then
        finish_record(prefix, id, 'expired', 'error', 'deadline passed before the job started',
            now, node, ttl_of(fields))
        ack(stream, group, eid)
        return {'expired'}
    end
    local attempt = tonumber(redis.call('HGET', rec, 'attempt') or '') or 1
    redis.call('HSET', rec, 'state', 'running', 'attempt', attempt, 'node', node,
        'updated_ms', now, 'prio', prio, 'type', field(fields, 'type') or '')
    return {'run', attempt}
end
