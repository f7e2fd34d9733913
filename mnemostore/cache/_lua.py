"""The Lua scripts that make the Redis side of each feature atomic (pure text, shared by both twins).

Recent-context window: a list of encoded messages (oldest first) plus a meta hash:

* ``ok``: "1" when the list is valid, i.e. it holds *every* existing message with ``floor < seq <= last``;
* ``last``: the conversation's last sequence number the list is complete up to;
* ``floor``: the seq of the newest existing message older than the list, 0 when there is none (so a read can
  tell "there is older history" without the database);
* ``hw``: high-water mark, the highest sequence number any writer has reported as committed;
* ``v``: a version token, replaced by every invalidation;
* ``n``: the length of the list, checked on every read, so a list evicted or expired apart from its meta (Redis
  evicts keys one by one under ``maxmemory``) reads as a miss, never as a shorter history.

Appends run ``APPEND`` after their database commit: it extends the list only when the batch continues it (``first
== last + 1``), otherwise it drops the list, because a concurrent appender's write-through was reordered or lost;
it always raises ``hw``. An append never starts a window, not even with a conversation's first message: its
write-through may arrive after later appends' were written and their ``hw`` lost with a flushed, evicted or expired
meta, and nothing would then say the list is behind. Only a refill starts a window. A reader that misses takes
``v`` from its read (``READ`` mints one when the meta has none), reads the database (the conversation's
``last_seq`` first, then the messages) and calls ``REFILL``, which only writes when ``v`` is unchanged (no
invalidation, and no loss of the meta to a flush, an eviction, an expiry or a restart, since the read) and the
snapshot is not older than ``hw`` (no append the snapshot missed).
Together: a list marked valid never lacks a message whose write-through or invalidation reached Redis.
"""

from __future__ import annotations

__all__ = ["CACHE_FILL", "CTX_APPEND", "CTX_INVALIDATE", "CTX_READ", "CTX_REFILL", "RATE_ACQUIRE"]

# Cache-aside fill, compare-and-set: write only if the key still holds what the miss saw (nothing, or the same
# tombstone). An invalidation after the miss writes a new tombstone, so a reader that read the database before a
# write can never store what it read over that write's invalidation.
# KEYS: key. ARGV: expected value ('' = absent), value, ttl ms. Returns 1 when written.
CACHE_FILL = """
local v = redis.call('GET', KEYS[1])
if (v == false and ARGV[1] == '') or v == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', tonumber(ARGV[3]))
  return 1
end
return 0
"""

# KEYS: meta, list. ARGV: count (entries from the tail; 0 = all), new token, ttl ms.
# Returns {v, ok} on a miss, {v, ok, last, floor, entries joined by ','} on a hit: one bulk string to parse
# instead of one per message, which is most of a read's client-side cost.
CTX_READ = """
local m = redis.call('HMGET', KEYS[1], 'v', 'ok', 'last', 'floor', 'n')
local v = m[1]
if not v then
  v = ARGV[2]
  redis.call('HSET', KEYS[1], 'v', v)
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
end
if m[2] ~= '1' or redis.call('LLEN', KEYS[2]) ~= tonumber(m[5]) then return {v, 0} end
local n = tonumber(ARGV[1])
local items
if n > 0 then items = redis.call('LRANGE', KEYS[2], -n, -1) else items = redis.call('LRANGE', KEYS[2], 0, -1) end
return {v, 1, tonumber(m[3]), tonumber(m[4]), table.concat(items, ',')}
"""

# KEYS: meta, list. ARGV: first seq, last seq, max size, ttl ms, new token, event channel ('' = none),
# event payload, 'PUBLISH' or 'SPUBLISH' (sharded, on a cluster: the channel shares the keys' hash tag, so their
# slot), entries... Returns 1 when the list was extended or created, 0 when it was dropped or absent.
CTX_APPEND = """
local first = tonumber(ARGV[1])
local last = tonumber(ARGV[2])
local size = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local m = redis.call('HMGET', KEYS[1], 'ok', 'last', 'hw', 'v', 'n')
local hw = tonumber(m[3]) or 0
if last > hw then hw = last end
local status = 0
local extend = m[1] == '1' and tonumber(m[2]) == first - 1 and redis.call('LLEN', KEYS[2]) == tonumber(m[5])
if extend then
  local len = redis.call('RPUSH', KEYS[2], unpack(ARGV, 9))
  local fields = {'ok', '1', 'last', last, 'hw', hw}
  if len > size then
    local cut = redis.call('LINDEX', KEYS[2], len - size - 1)
    redis.call('LTRIM', KEYS[2], len - size, -1)
    table.insert(fields, 'floor'); table.insert(fields, tonumber(string.match(cut, '^%[(%d+),')))
    len = size
  end
  table.insert(fields, 'n'); table.insert(fields, len)
  redis.call('HSET', KEYS[1], unpack(fields))
  redis.call('PEXPIRE', KEYS[2], ttl)
  status = 1
else
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'ok', '0', 'hw', hw)
end
redis.call('PEXPIRE', KEYS[1], ttl)
if ARGV[6] ~= '' then
  local publish = 'PUBLISH'
  if ARGV[8] == 'SPUBLISH' then publish = 'SPUBLISH' end
  redis.call(publish, ARGV[6], ARGV[7])
end
return status
"""

# KEYS: meta, list. ARGV: version seen by the miss, new token, last seq, floor, ttl ms, entries...
# Returns 1 when the window was written, 0 when it was refused (invalidated since, or an older snapshot).
CTX_REFILL = """
local m = redis.call('HMGET', KEYS[1], 'v', 'hw')
local v = m[1]
if not v or v ~= ARGV[1] then return 0 end
local last = tonumber(ARGV[3])
if last < (tonumber(m[2]) or 0) then return 0 end
local ttl = tonumber(ARGV[5])
redis.call('DEL', KEYS[2])
if #ARGV > 5 then
  redis.call('RPUSH', KEYS[2], unpack(ARGV, 6))
  redis.call('PEXPIRE', KEYS[2], ttl)
end
redis.call('HSET', KEYS[1], 'v', v, 'ok', '1', 'last', last, 'floor', ARGV[4], 'hw', last, 'n', #ARGV - 5)
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
"""

# KEYS: meta, list. ARGV: new token, ttl ms, reset ('1': forget hw, the conversation was deleted or replaced).
CTX_INVALIDATE = """
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'ok', '0')
if ARGV[3] == '1' then redis.call('HSET', KEYS[1], 'hw', 0) end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""

# Token buckets, all or nothing. KEYS: one bucket per limit. ARGV: cost, then capacity and refill rate
# (tokens per ms) per key. Time is the server's, so every process agrees on it.
# Returns {index of the refusing bucket or 0, retry after ms, tokens left per bucket (floored)...}.
RATE_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cost = tonumber(ARGV[1])
local tokens = {}
local deny = 0
local wait = 0
for i = 1, #KEYS do
  local cap = tonumber(ARGV[2 * i])
  local rate = tonumber(ARGV[2 * i + 1])
  local h = redis.call('HMGET', KEYS[i], 't', 'ts')
  local tok = tonumber(h[1])
  local ts = tonumber(h[2])
  if tok == nil or ts == nil then tok = cap; ts = now end
  if now > ts then tok = math.min(cap, tok + (now - ts) * rate) end
  tokens[i] = tok
  if tok < cost then
    local w = math.ceil((math.min(cost, cap) - tok) / rate)
    if cost > cap then w = math.ceil(cap / rate) end
    if w < 1 then w = 1 end
    if w > wait then wait = w; deny = i end
  end
end
local out = {deny, wait}
for i = 1, #KEYS do
  local tok = tokens[i]
  if deny == 0 then
    local cap = tonumber(ARGV[2 * i])
    local rate = tonumber(ARGV[2 * i + 1])
    tok = tok - cost
    redis.call('HSET', KEYS[i], 't', tostring(tok), 'ts', now)
    redis.call('PEXPIRE', KEYS[i], math.ceil((cap - tok) / rate) + 1000)
  end
  out[i + 2] = math.floor(tok)
end
return out
"""
