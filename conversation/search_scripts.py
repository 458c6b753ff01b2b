"""Lua for search (conversation/search.py explains the index).

Every script gets every key it touches in KEYS, as Redis asks of scripts (a cluster, ACL key
patterns and proxies route or check a script by its KEYS), in two fixed families:

- a chat's keys, CHAT: its P, P:m, P:o and P:g, laid out as redis_scripts.py's docstring
  says, four a chat (SEARCH_ONE_SERVER takes P alone for a chat it need not compare with the
  index); no script writes them;
- an owner's index, INDEX_FAMILY: every key under the owner's hash tag (one slot). The
  words a query stands for are found only as it runs (by prefix), so they are fields of one
  hash of postings, never keys of their own; each chat's words are fields of another.
"""

from __future__ import annotations

# The session keys a search script reads, after P (redis_scripts.FAMILY names them all), in
# the order the scripts take them, four to a chat.
CHAT = ("", ":m", ":o", ":g")

# The owner's index, after its prefix, in the order every index script takes them: C chat
# id -> its entry (_ENTRY); N number -> chat id (and `next`, the last number given); D the
# owner's words (a sorted set, read by prefix); W word -> " <number> <number> ... " (the
# postings: the chats holding the word, each number between spaces); T number -> that
# chat's words, space-separated (a rebuild changes only the difference).
INDEX_FAMILY = (":c", ":n", ":d", ":w", ":t")

_OWNER = r"""
local C, N, D, W, T = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
"""

# A chat's version (a digest of its message count, last message id, that message's stored
# length and its name: whatever a write changes, it changes), its name, and whether a reply
# is being written (P:g holds its lease); nil when the chat does not exist. The chat's keys
# are KEYS[k] to KEYS[k + 3], in CHAT's order.
_VERSION = r"""
local function version_of(k)
  local P, M, O, G = KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  local name = redis.call('HGET', P, 'name')
  if not name then return nil end
  local last = redis.call('LINDEX', O, -1) or ''
  local size = last ~= '' and redis.call('HSTRLEN', M, last) or 0
  local digest = redis.sha1hex(redis.call('LLEN', O) .. ':' .. last .. ':' .. size .. ':' .. name)
  return string.sub(digest, 1, 16), name, redis.call('EXISTS', G) == 1 and '1' or '0'
end
"""

# A chat's entry in C: "<number> <layout> <indexed at, ms> <busy 0|1> <version>". An entry
# written under another layout of the index (the one with a key per word, whose entries have
# no layout) reads as no entry, so the next query indexes that chat anew into this layout,
# keeping its number; the other layout's keys are read by nothing and expire.
_ENTRY = r"""
local LAYOUT = '2'

local function entry(n, at, busy, version)
  return table.concat({n, LAYOUT, at, busy, version}, ' ')
end

-- An entry's number, indexed at, busy and version; nothing for an entry of another layout.
local function parsed(held)
  return string.match(held, '^(%d+) ' .. LAYOUT .. ' (%d+) ([01]) (%x+)$')
end
"""

# needs(P, held, now, ttl_ms): what the chat of session key P needs, given its entry (held,
# '' when none): nil, 'gone' (it no longer exists, and the index holds it) or 'compare' (it
# may differ from the index). Only P is read: every write to a chat renews its expiry, so
# its last renewal (now + PTTL - SESSION_TTL) tells when it was last touched, and a chat
# untouched since it was indexed is as indexed. A reply still being written when the chat
# was indexed (busy) changes it without renewing it, so such a chat is compared every time.
# differs(k, held): whether the chat whose keys (CHAT) start at KEYS[k] differs from its
# entry (five reads).
_NEEDS = (
    _ENTRY
    + r"""
local function clock_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- A rename lands just after the read that renewed the chat, by less than this.
local SLACK_MS = 2000

local function needs(P, held, now, ttl_ms)
  local pttl = redis.call('PTTL', P)
  if pttl < 0 then return held ~= '' and 'gone' or nil end
  local _, at, busy = parsed(held)
  local renewed = now + pttl - ttl_ms
  if at and busy == '0' and renewed < tonumber(at) - SLACK_MS then return nil end
  return 'compare'
end

local function differs(k, held)
  local _, _, busy, version = parsed(held)
  local now_version, _, now_busy = version_of(k)
  return now_version ~= version or now_busy ~= busy
end
"""
)

# KEYS: each chat's keys (CHAT, four a chat).
# ARGV: SESSION_TTL in ms, then for each chat its entry in the index ('' when none).
# Returns a flat list of pairs for the chats that need work: {position (from 1), 'gone'}
# when the chat no longer exists; {position, 'stale'} when the index is missing or older
# than the chat. A chat is compared only when it may have changed (needs).
CHECK = (
    _VERSION
    + _NEEDS
    + r"""
local ttl_ms, now = tonumber(ARGV[1]), clock_ms()
local out = {}
for c = 1, #KEYS / 4 do
  local k, held = 4 * c - 3, ARGV[c + 1]
  local what = needs(KEYS[k], held, now, ttl_ms)
  if what == 'compare' then what = differs(k, held) and 'stale' or nil end
  if what then
    out[#out + 1] = c
    out[#out + 1] = what
  end
end
return out
"""
)

# Postings: " 3 17 42 " holds chats 3, 17 and 42, so ' <n> ' finds one without parsing.
# Chat number n no longer has word w: out of the word's postings, and a word no chat has
# any more leaves the owner's words.
_DROP = r"""
local function drop(w, n)
  local held = redis.call('HGET', W, w)
  if not held then return end
  local at = string.find(held, ' ' .. n .. ' ', 1, true)
  if not at then return end
  held = string.sub(held, 1, at) .. string.sub(held, at + #n + 2)
  if held == ' ' then
    redis.call('HDEL', W, w)
    redis.call('ZREM', D, w)
  else
    redis.call('HSET', W, w, held)
  end
end
"""

# Fields read or written by one command at most (unpack's limit on Lua's stack).
_AT_ONCE = r"""
local AT_ONCE = 500
"""

# KEYS: the owner's index (INDEX_FAMILY).
# ARGV: the chat id, busy, version, ttl, then the chat's words.
# Adds the chat's number to the postings of the words it gained, takes it out of those of
# the words it lost (T holds what it had, so the postings of the words it kept are not
# read). Every key of the index gets the ttl. Returns the chat's number.
INDEX = (
    _OWNER
    + _ENTRY
    + _DROP
    + _AT_ONCE
    + r"""
local sid, busy, version, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local held = redis.call('HGET', C, sid)
local n = held and string.match(held, '^(%d+) ')
if not n then
  n = tostring(redis.call('HINCRBY', N, 'next', 1))
  redis.call('HSET', N, n, sid)
end
local had = {}
for w in string.gmatch(redis.call('HGET', T, n) or '', '%S+') do had[w] = true end
local has, gained = {}, {}
for i = 5, #ARGV do
  local w = ARGV[i]
  has[w] = true
  if not had[w] then gained[#gained + 1] = w end
end
for i = 1, #gained, AT_ONCE do
  local part = {unpack(gained, i, math.min(i + AT_ONCE - 1, #gained))}
  local postings = redis.call('HMGET', W, unpack(part))
  local fields, ranked = {}, {}
  for j, w in ipairs(part) do
    fields[#fields + 1] = w
    fields[#fields + 1] = (postings[j] or ' ') .. n .. ' '
    ranked[#ranked + 1] = 0
    ranked[#ranked + 1] = w
  end
  redis.call('HSET', W, unpack(fields))
  redis.call('ZADD', D, unpack(ranked))
end
for w in pairs(had) do
  if not has[w] then drop(w, n) end
end
if #ARGV >= 5 then
  redis.call('HSET', T, n, table.concat(ARGV, ' ', 5))
else
  redis.call('HDEL', T, n)
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', C, sid, entry(n, now, busy, version))
for _, k in ipairs({C, N, D, W, T}) do redis.call('EXPIRE', k, ttl) end
return n
"""
)

# KEYS: the owner's index (INDEX_FAMILY). ARGV: the chat id. Takes the chat out.
FORGET = (
    _OWNER
    + _DROP
    + r"""
local sid = ARGV[1]
local held = redis.call('HGET', C, sid)
local n = held and string.match(held, '^(%d+) ')
if not n then return 0 end
for w in string.gmatch(redis.call('HGET', T, n) or '', '%S+') do drop(w, n) end
redis.call('HDEL', T, n)
redis.call('HDEL', C, sid)
redis.call('HDEL', N, n)
return 1
"""
)

_FIND = r"""
-- The ids of the chats holding, for every query word (ARGV from `first`), a word it begins;
-- and '1' when a query word began more than `most` words (the rest were not looked at).
local function find(most, first)
  local cut = '0'
  local found = nil
  for i = first, #ARGV do
    local term = ARGV[i]
    local words = redis.call('ZRANGEBYLEX', D, '[' .. term, '[' .. term .. '\255',
      'LIMIT', 0, most + 1)
    if #words > most then
      cut = '1'
      words[#words] = nil
    end
    local these = {}
    if #words > 0 then
      for _, held in ipairs(redis.call('HMGET', W, unpack(words))) do
        for n in string.gmatch(held or '', '%d+') do
          if not found or found[n] then these[n] = true end
        end
      end
    end
    found = these
    if next(found) == nil then return cut, {} end
  end
  local numbers = {}
  for n in pairs(found) do numbers[#numbers + 1] = n end
  local ids = {}
  for i = 1, #numbers, AT_ONCE do
    local part = {unpack(numbers, i, math.min(i + AT_ONCE - 1, #numbers))}
    for _, sid in ipairs(redis.call('HMGET', N, unpack(part))) do
      if sid then ids[sid] = true end
    end
  end
  return cut, ids
end
"""

# KEYS: the owner's index (INDEX_FAMILY). ARGV: the most words one query word may stand
# for, then the query's words (case-folded). Returns {'1' when a query word began more
# words than that (the rest were not looked at), the ids of the chats holding, for every
# query word, a word it begins...}.
QUERY = (
    _OWNER
    + _AT_ONCE
    + _FIND
    + r"""
local cut, ids = find(tonumber(ARGV[1]), 2)
local out = {cut}
for sid in pairs(ids) do out[#out + 1] = sid end
return out
"""
)

# One server, not a Cluster: the whole query in one script while the index is up to date
# (the chats of one browser are in many slots; a single server has none).
# KEYS: the owner's index (INDEX_FAMILY), then the keys of each of the browser's chats,
# newest chat first: its P only, or all of CHAT for a chat the caller wants compared (one
# it rebuilt lately, touched so lately that it is compared again).
# ARGV: SESSION_TTL in ms, the most words a query word may stand for, the session key's parts
# before and after the id ("chat:s:{", "}"), the number of keys of each chat ('1' or '4' a
# chat, one string), then the query words.
# Returns {'work', position, 'gone'|'stale', ...} when chats need work first (positions
# among the chats, from 1: do the work, then call again), else {'ok', cut, the positions of
# the matching chats, in the order given...}. A chat that may have changed since it was
# indexed is compared when given with all its keys (and found as indexed, its entry is
# restamped: it is not compared again until touched again), and 'stale' when given with P
# only.
SEARCH_ONE_SERVER = (
    _OWNER
    + _AT_ONCE
    + _VERSION
    + _NEEDS
    + _FIND
    + r"""
local ttl_ms, most, before, after = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4]
local sizes = ARGV[5]
local chats = #sizes
local sids, first = {}, {}
local k = 6
for c = 1, chats do
  first[c] = k
  sids[c] = string.sub(KEYS[k], #before + 1, #KEYS[k] - #after)
  k = k + tonumber(string.sub(sizes, c, c))
end
local now = clock_ms()
local work = {'work'}
for i = 1, chats, AT_ONCE do
  local last = math.min(i + AT_ONCE - 1, chats)
  local entries = redis.call('HMGET', C, unpack(sids, i, last))
  for c = i, last do
    local held = entries[c - i + 1] or ''
    local what = needs(KEYS[first[c]], held, now, ttl_ms)
    if what == 'compare' and string.sub(sizes, c, c) == '4' then
      what = differs(first[c], held) and 'stale' or nil
      local n, _, busy, version = parsed(held)
      if not what and n then redis.call('HSET', C, sids[c], entry(n, now, busy, version)) end
    elseif what == 'compare' then
      -- Rebuilt rather than compared: asking for its other keys would cost a round trip,
      -- about what the rebuild costs, and most chats touched since indexed have changed.
      what = 'stale'
    end
    if what then
      work[#work + 1] = c
      work[#work + 1] = what
    end
  end
end
if #work > 1 then return work end
local cut, ids = find(most, 6)
local out = {'ok', cut}
for c = 1, chats do
  if ids[sids[c]] then out[#out + 1] = c end
end
return out
"""
)

# KEYS: one chat's keys (CHAT). ARGV: SESSION_TTL in ms. Returns {busy, version, name,
# again, message JSON...}: the first three as version_of gives them; again '1' when the next
# query must compare the chat even untouched (it was touched within the slack before now, or
# a reply is being written), else '0'; every message of every branch, read at once. nil
# when the chat does not exist. Reads without renewing the chat: indexing is not the person
# using it (CHECK relies on it).
READ = (
    _VERSION
    + _NEEDS
    + r"""
local version, name, busy = version_of(1)
if not version then return nil end
local now = clock_ms()
local renewed = now + redis.call('PTTL', KEYS[1]) - tonumber(ARGV[1])
local again = (busy == '1' or renewed >= now - SLACK_MS) and '1' or '0'
local out = {busy, version, name, again}
local all = redis.call('HGETALL', KEYS[2])
for i = 2, #all, 2 do out[#out + 1] = all[i] end
return out
"""
)

# KEYS: the keys (CHAT, four a chat) of each chat to show results from (every branch of
# it). ARGV: query words to filter messages by (ASCII ones only: Lua lowers ASCII letters
# alone, so another word could miss a message whose case differs). Returns, for each chat,
# {name, JSON of each message whose text, lowered, holds every one of those words...} ({}
# when the chat is gone); a cheap first cut, done where the messages are, and checked again
# by the caller. Reads without renewing.
CANDIDATES = r"""
local out = {}
for c = 1, #KEYS / 4 do
  local name = redis.call('HGET', KEYS[4 * c - 3], 'name')
  local found = {}
  if name then
    found[1] = name
    local raws = redis.call('HGETALL', KEYS[4 * c - 2])
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
