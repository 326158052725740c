-- Read a stream's position and, optionally, its history after an offset.
--
-- KEYS[1] meta_key     hash: e = epoch, s = top offset
-- KEYS[2] history_key  Redis stream; entry id <offset>-0
--
-- ARGV[1] since        return entries with an offset above this; -1: none, only the position
-- ARGV[2] limit        at most this many entries
-- ARGV[3] new_epoch    epoch to start if the stream has no meta, so the position given out stays valid
-- ARGV[4] history_ttl  seconds the meta lives (refreshed: a read position must outlive the read)
--
-- Returns {top, epoch, entries}; entries as XRANGE gives them.

local meta_key, history_key = KEYS[1], KEYS[2]
local since, limit, new_epoch, history_ttl = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4]

local meta = redis.call("hmget", meta_key, "e", "s")
local epoch, top = meta[1], tonumber(meta[2] or "0")
if not epoch then
  epoch = new_epoch
  top = 0
  redis.call("del", history_key)
  redis.call("hset", meta_key, "e", epoch, "s", 0)
end
redis.call("expire", meta_key, history_ttl)

local entries = {}
if since >= 0 and since < top then
  entries = redis.call("xrange", history_key, (since + 1) .. "-0", "+", "COUNT", limit)
end
return {top, epoch, entries}
