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
# What a chat needs: nil, 'gone' or 'stale' (see CHECK). held: what the index holds of it.
_NEEDS = r"""
local function clock_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function needs(P, held, now, ttl_ms)
  local pttl = redis.call('PTTL', P)
  if pttl < 0 then return held ~= '' and 'gone' or nil end
  local at, busy, version = string.match(held, '^%d+ (%d+) ([01]) (.*)$')
  local renewed = now + pttl - ttl_ms
  -- Two seconds of slack: a rename lands just after the read that renewed the chat.
  if at and busy == '0' and renewed < tonumber(at) - 2000 then return nil end
  local now_version, _, now_busy = version_of(P)
  if now_version ~= version or now_busy ~= busy then return 'stale' end
  return nil
end
"""

CHECK = (
    _VERSION
    + _NEEDS
    + r"""
local ttl_ms, now = tonumber(ARGV[1]), clock_ms()
local out = {}
for c = 1, #KEYS do
  local what = needs(KEYS[c], ARGV[c + 1], now, ttl_ms)
  if what then
    out[#out + 1] = c
    out[#out + 1] = what
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
_FIND = r"""
-- The ids of the chats holding, for every query word (ARGV from `first`), a word it begins;
-- and '1' when a query word began more than `most` words (the rest were not looked at).
local function find(N, V, prefix, most, first)
  local cut = '0'
  local found = nil
  for i = first, #ARGV do
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
    if next(found) == nil then return cut, {} end
  end
  local numbers = {}
  for n in pairs(found) do numbers[#numbers + 1] = n end
  local ids = {}
  for i = 1, #numbers, 500 do
    for _, sid in ipairs(redis.call('HMGET', N, unpack(numbers, i, math.min(i + 499, #numbers)))) do
      if sid then ids[sid] = true end
    end
  end
  return cut, ids
end
"""

QUERY = (
    _FIND
    + r"""
local cut, ids = find(KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2]), 3)
local out = {cut}
for sid in pairs(ids) do out[#out + 1] = sid end
return out
"""
)

# One server, not a Cluster: the whole query in one round trip while the index is up to
# date (the chats of one browser are in many slots; a single server has none).
# KEYS: the owner's C, N, V, then the browser's list of chats (chat:b:<owner>).
# ARGV: SESSION_TTL in ms, the index's prefix, the most words a query word may stand for,
# the session key's parts before and after the id ("chat:s:{", "}"), then the query words.
# Returns {'work', chat id, 'gone'|'stale', ...} when chats need work first (do it, then
# call again), else {'ok', cut, the ids of the matching chats, newest first...}.
SEARCH_ONE_SERVER = (
    _VERSION
    + _NEEDS
    + _FIND
    + r"""
local C, N, V, B = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local ttl_ms, prefix, most = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local before, after = ARGV[4], ARGV[5]
local sids = redis.call('ZREVRANGE', B, 0, -1)
local now = clock_ms()
local work = {'work'}
for i = 1, #sids, 500 do
  local part = {unpack(sids, i, math.min(i + 499, #sids))}
  local held = redis.call('HMGET', C, unpack(part))
  for j, sid in ipairs(part) do
    local what = needs(before .. sid .. after, held[j] or '', now, ttl_ms)
    if what then
      work[#work + 1] = sid
      work[#work + 1] = what
    end
  end
end
if #work > 1 then return work end
local cut, ids = find(N, V, prefix, most, 6)
local out = {'ok', cut}
for _, sid in ipairs(sids) do
  if ids[sid] then out[#out + 1] = sid end
end
return out
"""
)

# KEYS: one chat's P. Returns {busy, version, name, message JSON...} as version_of gives
# them, every message of every branch, read at once, or nil when the chat does not exist.
# Reads without renewing the chat: indexing is not the person using it (CHECK relies on it).
READ = (
    _VERSION
    + r"""
local P = KEYS[1]
local version, name, busy = version_of(P)
if not version then return nil end
local out = {busy, version, name}
local all = redis.call('HGETALL', P .. ':m')
for i = 2, #all, 2 do out[#out + 1] = all[i] end
return out
"""
)

# KEYS: the P of each chat to show results from (every branch of it). ARGV: query words to
# filter messages by
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
    local raws = redis.call('HGETALL', P .. ':m')
    for i = 2, #raws, 2 do
      local lowered, all = string.lower(raws[i]), true
      for _, word in ipairs(ARGV) do
        if not string.find(lowered, word, 1, true) then
          all = false
          break
        end
      end
      if all then found[#found + 1] = raws[i] end
    end
  end
  out[c] = found
end
return out
"""
