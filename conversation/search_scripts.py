"""Lua for search (conversation/search.py explains the index).

CHECK, READ and CANDIDATES read session keys laid out as redis_scripts.py's docstring says
(P, P:m, P:o, P:g) and write nothing; INDEX, FORGET and QUERY touch one owner's index only,
every key of which carries the owner's hash tag (the word sets' names are built here from
the index's prefix: same tag, same slot).
"""

from __future__ import annotations

# A chat's version (a digest of its message count, last message id, that message's stored
# length and its name: whatever a write changes, it changes), its name, and whether a reply
# is being written (P:g holds its lease); nil when the chat does not exist. P's other keys
# are P plus their suffix: the same hash tag, the same slot.
_VERSION = r"""
local function version_of(P)
  local M, O = P .. ':m', P .. ':o'
  local name = redis.call('HGET', P, 'name')
  if not name then return nil end
  local last = redis.call('LINDEX', O, -1) or ''
  local size = last ~= '' and redis.call('HSTRLEN', M, last) or 0
  local digest = redis.sha1hex(redis.call('LLEN', O) .. ':' .. last .. ':' .. size .. ':' .. name)
  return string.sub(digest, 1, 16), name, redis.call('EXISTS', P .. ':g') == 1 and '1' or '0'
end
"""

# KEYS: each chat's P (its other keys are P plus their suffix: the same hash tag, the same
# slot; one key a chat keeps the call small, and it is made at every query).
# ARGV: SESSION_TTL in ms, then for each chat what the index holds of it ('' when nothing):
# "<number> <indexed at, ms> <busy 0|1> <version>".
# Returns a flat list of pairs for the chats that need work: {position (from 1), 'gone'}
# when the chat no longer exists; {position, 'stale'} when the index is missing or older
# than the chat. A chat is compared (five reads) only when it may have changed since it was
# indexed: every write to a chat renews its expiry, so its last renewal (now + PTTL -
# SESSION_TTL) tells when it was last touched; a reply still being written when the chat
# was indexed (busy) changes it without renewing it, so such a chat is compared every time.
CHECK = (
    _VERSION
    + r"""
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
      local now_version, _, now_busy = version_of(P)
      if now_version ~= version or now_busy ~= busy then
        out[#out + 1] = c
        out[#out + 1] = 'stale'
      end
    end
  end
end
return out
"""
)

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
INDEX = (
    _DROP
    + r"""
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
)

# KEYS: C, N, V as for INDEX. ARGV: the index's prefix, the chat id. Takes the chat out.
FORGET = (
    _DROP
    + r"""
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
)

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

# KEYS: one chat's P. Returns {busy, version, name, message JSON...} as version_of gives
# them, read at once, or nil when the chat does not exist. Reads without renewing the chat:
# indexing is not the person using it (CHECK relies on that).
READ = (
    _VERSION
    + r"""
local P = KEYS[1]
local version, name, busy = version_of(P)
if not version then return nil end
local out = {busy, version, name}
local ids = redis.call('LRANGE', P .. ':o', 0, -1)
for i = 1, #ids, 500 do
  for _, raw in ipairs(redis.call('HMGET', P .. ':m', unpack(ids, i, math.min(i + 499, #ids)))) do
    if raw then out[#out + 1] = raw end
  end
end
return out
"""
)

# KEYS: the P of each chat to show results from. ARGV: query words to filter messages by
# (ASCII ones only: Lua lowers ASCII letters alone, so another word could miss a message
# whose case differs). Returns, for each chat, {name, JSON of each message whose text,
# lowered, holds every one of those words...} ({} when the chat is gone); a cheap first cut,
# done where the messages are, and checked again by the caller. Reads without renewing.
CANDIDATES = r"""
local out = {}
for c = 1, #KEYS do
  local P = KEYS[c]
  local name = redis.call('HGET', P, 'name')
  local found = {}
  if name then
    found[1] = name
    local ids = redis.call('LRANGE', P .. ':o', 0, -1)
    for i = 1, #ids, 500 do
      local raws = redis.call('HMGET', P .. ':m', unpack(ids, i, math.min(i + 499, #ids)))
      for _, raw in ipairs(raws) do
        if raw then
          local lowered, all = string.lower(raw), true
          for _, word in ipairs(ARGV) do
            if not string.find(lowered, word, 1, true) then
              all = false
              break
            end
          end
          if all then found[#found + 1] = raw end
        end
      end
    end
  end
  out[c] = found
end
return out
"""
