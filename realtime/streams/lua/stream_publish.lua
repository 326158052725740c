-- Append one event to a stream's history and queue it for the stream's channel-layer
-- group, atomically, on the Redis host that owns the stream (one round trip).
-- With history_size 0 the event is ephemeral (a progress tick): no offset, no history;
-- frame_rest is then the whole frame, queued as it is.
--
-- KEYS[1] meta_key     hash: e = epoch, s = top offset
-- KEYS[2] history_key  Redis stream; entry id <offset>-0, fields d (frame rest), t (ms), x (extra)
-- KEYS[3] group_key    the channel layer's group (sorted set of member channels, scored by join time)
-- KEYS[4] result_key   idempotency record of a publish done under the same key (used if ARGV[13] > 0)
--
-- ARGV[1]  new_epoch        epoch to start if the stream has no meta (its history was lost)
-- ARGV[2]  history_size     entries kept (0: ephemeral) (XADD MAXLEN, exact: a client is told the truth about what is left)
-- ARGV[3]  history_ttl      seconds the history and meta live after the last publish
-- ARGV[4]  now              seconds since the epoch, as a float
-- ARGV[5]  stream           the stream's name (its group name)
-- ARGV[6]  frame_rest       the frame after its position fields: '"type":...}'
-- ARGV[7]  event_type       for the consumer's metrics
-- ARGV[8]  extra            kept with the entry (the tenant of a user's event), '' for none
-- ARGV[9]  layer_prefix     the channel layer's key prefix ("asgi"); "": the layer is not on Redis, queue nothing
-- ARGV[10] group_expiry     seconds a group member lives without refresh
-- ARGV[11] message_expiry   seconds a queued message lives
-- ARGV[12] capacity         messages a member's queue holds before new ones are dropped
-- ARGV[13] result_ttl       seconds the idempotency record lives; 0: no record
--
-- Returns {offset, epoch, duplicate (0|1), dropped (members over capacity)}.

local meta_key, history_key, group_key, result_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local new_epoch, history_size, history_ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local now, stream, frame_rest, event_type, extra = tonumber(ARGV[4]), ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local prefix, group_expiry, message_expiry = ARGV[9], tonumber(ARGV[10]), tonumber(ARGV[11])
local capacity, result_ttl = tonumber(ARGV[12]), tonumber(ARGV[13])

local offset, epoch, text = false, false, frame_rest
if history_size ~= "0" then
  if result_ttl > 0 then
    local done = redis.call("hmget", result_key, "s", "e")
    if done[1] then
      return {tonumber(done[1]), done[2], 1, 0}
    end
  end

  epoch = redis.call("hget", meta_key, "e")
  if not epoch then
    -- No meta: whatever history is left belongs to a lost epoch.
    epoch = new_epoch
    redis.call("del", history_key)
    redis.call("hset", meta_key, "e", epoch)
  end
  offset = redis.call("hincrby", meta_key, "s", 1)
  redis.call("expire", meta_key, history_ttl)

  local ms = math.floor(now * 1000)
  redis.call("xadd", history_key, "MAXLEN", history_size, offset .. "-0", "d", frame_rest, "t", ms, "x", extra)
  redis.call("expire", history_key, history_ttl)

  if result_ttl > 0 then
    redis.call("hset", result_key, "s", offset, "e", epoch)
    redis.call("expire", result_key, result_ttl)
  end

  -- Durable events per minute on this host, for the platform page (kept a little over an hour).
  local minute_key = KEYS[1]:match("^[^:]*") .. ":published:" .. math.floor(now / 60)
  redis.call("incr", minute_key)
  redis.call("expire", minute_key, 3900)

  -- The frame as sockets get it, built once here for every member.
  text = '{"stream":"' .. stream .. '","offset":' .. offset .. ',"epoch":"' .. epoch .. '",' .. frame_rest
end
local dropped = 0
if prefix == "" then
  return {offset or 0, epoch or "", 0, dropped}
end
redis.call("zremrangebyscore", group_key, 0, now - group_expiry)
local members = redis.call("zrange", group_key, 0, -1)
for _, member in ipairs(members) do
  local message = {type = "realtime.event", event_type = event_type, text = text, ts = now}
  if offset then
    message["stream"], message["offset"], message["epoch"] = stream, offset, epoch
  end
  local bang = string.find(member, "!", 1, true)
  local queue
  if bang == #member then
    -- A whole server process: one message naming the group; it fans out inside.
    queue = prefix .. member
    message["__asgi_group__"] = stream
  elseif bang then
    queue = prefix .. string.sub(member, 1, bang)
    message["__asgi_channel__"] = {member}
  else
    queue = prefix .. member
  end
  if redis.call("zcount", queue, "-inf", "+inf") < capacity then
    local score = now
    local newest = redis.call("zrange", queue, -1, -1, "WITHSCORES")
    if newest[2] and tonumber(newest[2]) >= score then
      score = tonumber(newest[2]) + 0.000001
    end
    -- 12 bytes the layer's serializer strips (its random prefix): the member must be
    -- unique in the queue, and an ephemeral frame may repeat one already queued.
    local unique = redis.call("incr", prefix .. ":stream-seq")
    local payload = string.sub(string.format("%012d", unique), -12) .. cmsgpack.pack(message)
    redis.call("zadd", queue, string.format("%.6f", score), payload)
    redis.call("expire", queue, message_expiry)
  else
    dropped = dropped + 1
  end
end

return {offset or 0, epoch or "", 0, dropped}
