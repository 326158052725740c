-- One web process's presence tick for one tenant (realtime/presence/store.py).
--
-- KEYS[1] entries: sorted set, member "<user>|<process>", score = when it expires (ms)
-- KEYS[2] counts:  hash user -> live entries (a user with sockets on two processes: 2)
-- KEYS[3] since:   hash user -> when the user came online (ms)
-- KEYS[4] pending: hash user -> "+<since>" (came online) or "-" (went offline), not yet sent
-- KEYS[5] sent:    when a diff was last handed out (ms)
--
-- ARGV: now_ms, expires_ms, throttle_ms, key_ttl_ms, process, diffs (1: keep them, 0: not),
--       n_present, user..., n_gone, user...
--
-- Entries of any process that expired (a process killed with -9 stops refreshing
-- them) are removed first. Then this process's present users are (re)written with the
-- new expiry and its gone users removed. A user's count going 0 -> 1 is a join, 1 -> 0 a
-- leave: a second tab or a second process never joins twice. Returns the pending diff
-- (user, change, user, change, ...) when no diff was handed out for this tenant in the
-- last `throttle` ms, else nothing: at most one presence frame per tenant per
-- throttle period, whichever process sends it.
local now = tonumber(ARGV[1])
local expires = tonumber(ARGV[2])
local throttle = tonumber(ARGV[3])
local key_ttl = tonumber(ARGV[4])
local process = ARGV[5]
local diffs = ARGV[6] == '1'

local function left(user)
    if redis.call('HINCRBY', KEYS[2], user, -1) <= 0 then
        redis.call('HDEL', KEYS[2], user)
        redis.call('HDEL', KEYS[3], user)
        if diffs then redis.call('HSET', KEYS[4], user, '-') end
    end
end

for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
    redis.call('ZREM', KEYS[1], member)
    left(string.match(member, '^[^|]+'))
end

local i = 7
for _ = 1, tonumber(ARGV[i]) do
    i = i + 1
    local user = ARGV[i]
    if redis.call('ZADD', KEYS[1], expires, user .. '|' .. process) == 1 then
        if redis.call('HINCRBY', KEYS[2], user, 1) == 1 then
            redis.call('HSET', KEYS[3], user, now)
            if diffs then redis.call('HSET', KEYS[4], user, '+' .. now) end
        end
    end
end
i = i + 1
for _ = 1, tonumber(ARGV[i]) do
    i = i + 1
    local user = ARGV[i]
    if redis.call('ZREM', KEYS[1], user .. '|' .. process) == 1 then
        left(user)
    end
end

for k = 1, 4 do
    redis.call('PEXPIRE', KEYS[k], key_ttl)
end
if redis.call('HLEN', KEYS[4]) > 0 and now - tonumber(redis.call('GET', KEYS[5]) or '0') >= throttle then
    redis.call('SET', KEYS[5], now, 'PX', key_ttl)
    local diff = redis.call('HGETALL', KEYS[4])
    redis.call('DEL', KEYS[4])
    return diff
end
return {}
