"""Lua for search (conversation/search.py explains the index).

CHECK reads session keys laid out as redis_scripts.py's docstring says (P, P:m, P:o, P:g)
and writes nothing; the others touch one owner's index only, every key of which carries the
owner's hash tag (the word sets' names are built here from the index's prefix: same tag,
same slot).
"""

from __future__ import annotations

# KEYS: each chat's P (its other keys are P plus their suffix: the same hash tag, the same
# slot; one key a chat keeps the call small, and it is made at every query).
# ARGV: SESSION_TTL in ms, then for each chat what the index holds of it ('' when nothing):
# "<number> <indexed at, ms> <busy 0|1> <version>".
# Returns a flat list of pairs for the chats that need work: {position (from 1), 'gone'}
# when the chat no longer exists; {position, 'v'..busy..version} when the index is missing
# or older than the chat. A chat is compared (four reads) only when it may have changed
# since it was indexed: every write to a chat renews its expiry, so its last renewal
# (now + PTTL - SESSION_TTL) tells when it was last touched; a reply still being written
# when the chat was indexed (busy) changes it without renewing it, so such a chat is
# compared every time. The version: message count, last message id, that message's stored
# length, name; 'busy' is whether a reply is being written (P:g holds its lease).
CHECK = r"""
local ttl_ms = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for c = 1, #KEYS do
  local P = KEYS[c]
  local held = ARGV[c + 1]
  local pttl = redis.call('PTTL', P)
  if pttl < 0 then
    if held ~= '' then
      out[#out + 1] = c
      out[#out + 1] = 'gone'
    end
  else
    local at, busy, version = string.match(held, '^%d+ (%d+) ([01]) (.*)$')
    local renewed = now + pttl - ttl_ms
    -- Two seconds of slack: a rename lands just after the read that renewed the chat.
    if not at or busy == '1' or renewed >= tonumber(at) - 2000 then
      local M, O, G = P .. ':m', P .. ':o', P .. ':g'
      local name = redis.call('HGET', P, 'name') or ''
      local last = redis.call('LINDEX', O, -1) or ''
      local size = last ~= '' and redis.call('HSTRLEN', M, last) or 0
      local now_version = redis.call('LLEN', O) .. ':' .. last .. ':' .. size .. ':' .. name
      local now_busy = redis.call('EXISTS', G) == 1 and '1' or '0'
      if now_version ~= version or now_busy ~= busy then
        out[#out + 1] = c
        out[#out + 1] = 'v' .. now_busy .. now_version
      end
    end
  end
end
return out
"""

# Chat number n no longer has word w: out of the word's set, and a word no chat has any
# more leaves the owner's words.
_DROP = r"""
local function drop(prefix, V, w, n)
  local W = prefix .. ':w:' .. w
  redis.call('SREM', W, n)
  if redis.call('SCARD', W) == 0 then
    redis.call('DEL', W)
    redis.call('ZREM', V, w)
  end
end
"""

# KEYS: the owner's C (chat id -> "<number> <indexed at> <busy> <version>"), N (number ->
# chat id, and `next`), V (the owner's words, a sorted set read by prefix).
# ARGV: the index's prefix, the chat id, busy, version, ttl, then the chat's words.
# Word sets <prefix>:w:<word> hold the numbers of the chats that have the word; a chat's
# own words are kept in <prefix>:l:<number>, so a rebuild adds and removes only the
# difference. Every key written gets the ttl.
INDEX = _DROP + r"""
local C, N, V = KEYS[1], KEYS[2], KEYS[3]
local prefix, sid, busy, version, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local held = redis.call('HGET', C, sid)
local n = held and string.match(held, '^(%d+) ')
if not n then
  n = tostring(redis.call('HINCRBY', N, 'next', 1))
  redis.call('HSET', N, n, sid)
end
local L = prefix .. ':l:' .. n
local had = {}
for w in string.gmatch(redis.call('GET', L) or '', '%S+') do had[w] = true end
local has = {}
for i = 6, #ARGV do
  local w = ARGV[i]
  has[w] = true
  local W = prefix .. ':w:' .. w
  redis.call('SADD', W, n)
  redis.call('EXPIRE', W, ttl)
  if not had[w] then redis.call('ZADD', V, 0, w) end
end
for w in pairs(had) do
  if not has[w] then drop(prefix, V, w, n) end
end
if #ARGV >= 6 then
  redis.call('SET', L, table.concat(ARGV, ' ', 6), 'EX', ttl)
else
  redis.call('DEL', L)
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', C, sid, n .. ' ' .. now .. ' ' .. busy .. ' ' .. version)
for _, k in ipairs({C, N, V}) do redis.call('EXPIRE', k, ttl) end
return n
"""

# KEYS: C, N, V as for INDEX. ARGV: the index's prefix, the chat id. Takes the chat out.
FORGET = _DROP + r"""
local C, N, V = KEYS[1], KEYS[2], KEYS[3]
local prefix, sid = ARGV[1], ARGV[2]
local held = redis.call('HGET', C, sid)
local n = held and string.match(held, '^(%d+) ')
if not n then return 0 end
local L = prefix .. ':l:' .. n
for w in string.gmatch(redis.call('GET', L) or '', '%S+') do drop(prefix, V, w, n) end
redis.call('DEL', L)
redis.call('HDEL', C, sid)
redis.call('HDEL', N, n)
return 1
"""

# KEYS: N, V. ARGV: the index's prefix, the most words one query word may stand for, then
# the query's words (case-folded). Returns {'1' when a query word began more words than
# that (the rest were not looked at), the ids of the chats holding, for every query word, a
# word it begins...}.
QUERY = r"""
local N, V = KEYS[1], KEYS[2]
local prefix, most = ARGV[1], tonumber(ARGV[2])
local cut = '0'
local found = nil
for i = 3, #ARGV do
  local term = ARGV[i]
  local words = redis.call('ZRANGEBYLEX', V, '[' .. term, '[' .. term .. '\255',
    'LIMIT', 0, most + 1)
  if #words > most then
    cut = '1'
    words[#words] = nil
  end
  local these = {}
  for _, w in ipairs(words) do
    for _, n in ipairs(redis.call('SMEMBERS', prefix .. ':w:' .. w)) do
      if not found or found[n] then these[n] = true end
    end
  end
  found = these
  if next(found) == nil then return {cut} end
end
local numbers = {}
for n in pairs(found) do numbers[#numbers + 1] = n end
local out = {cut}
for i = 1, #numbers, 500 do
  local ids = redis.call('HMGET', N, unpack(numbers, i, math.min(i + 499, #numbers)))
  for _, sid in ipairs(ids) do if sid then out[#out + 1] = sid end end
end
return out
"""

# KEYS: P, P:m, P:o, P:g of one chat. Returns {busy, version, name, message JSON...} as
# CHECK computes them, read at once, or nil when the chat does not exist. Reads without
# renewing the chat: indexing is not the person using it (CHECK relies on that).
READ = r"""
local P, M, O, G = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local name = redis.call('HGET', P, 'name')
if not name then return nil end
local last = redis.call('LINDEX', O, -1) or ''
local size = last ~= '' and redis.call('HSTRLEN', M, last) or 0
local version = redis.call('LLEN', O) .. ':' .. last .. ':' .. size .. ':' .. name
local out = {redis.call('EXISTS', G) == 1 and '1' or '0', version, name}
local ids = redis.call('LRANGE', O, 0, -1)
for i = 1, #ids, 500 do
  for _, raw in ipairs(redis.call('HMGET', M, unpack(ids, i, math.min(i + 499, #ids)))) do
    if raw then out[#out + 1] = raw end
  end
end
return out
"""
