"""Lua scripts: each multi-key change to a session is one atomic, idempotent round trip.

redis-py retries a command whose connection failed, and the first attempt may already have
run, so every script is written to give the same result when run twice: appends go through
HSETNX, stream entries carry explicit ids (a repeated XADD fails harmlessly), and a retried
turn start recognises its own generation lock.

Keys of session P = <prefix>:s:{<session id>}: P (meta hash), P:m (message id -> JSON),
P:o (message ids in order), P:x (idempotency index), P:g (generation lock, value = reply id),
P:r:<reply id> (the reply's stream) and P:r:<reply id>:w (set, expiring, while someone tails
that stream from Redis). The braces are a Redis Cluster hash tag: every key of a session lives
in one slot, so each script below touches one slot only. Every script gets the keys it
touches in KEYS, the session's family in the order of FAMILY; the one exception is the stream
of the reply a script finds in P's `live` field (an orphaned reply to mark interrupted, an
old stream to drop), whose id no caller knows beforehand: it is P's own key plus a suffix,
so it carries P's hash tag and lives in P's slot on P's node.
"""

from __future__ import annotations

from conversation.models import CONTINUABLE

# The suffixes of a session's keys after P, in the order scripts receive them in KEYS.
FAMILY = ("", ":m", ":o", ":x", ":g")

_COMMON = r"""
local P, M, O, X, G = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]

local function stream_key(mid) return P..':r:'..mid end

-- Equal digests? Every byte is compared whatever the first difference, so the time taken
-- tells nothing about the stored digest (all digests have the same length).
local function same(stored, given)
  if not stored or given == '' or #stored ~= #given then return false end
  local diff = 0
  for i = 1, #given do
    diff = bit.bor(diff, bit.bxor(string.byte(stored, i), string.byte(given, i)))
  end
  return diff == 0
end

-- May this caller use session P? 'ok', 'csrf' (only the browser cookie matched, on a request
-- that failed the CSRF guard) or 'denied' (no match, or no such session: the same answer).
-- token_hash, owner_hash: digests of the Bearer token and the browser cookie presented ('').
local function authorized(token_hash, owner_hash, cookie_allowed)
  local stored = redis.call('HMGET', P, 'th', 'owner')
  if same(stored[1], token_hash) then return 'ok' end
  if same(stored[2], owner_hash) then return cookie_allowed == '1' and 'ok' or 'csrf' end
  return 'denied'
end

local function renew(ttl)
  for _, k in ipairs({P, M, O, X}) do redis.call('EXPIRE', k, ttl) end
end

-- The text written so far and the id of the stream's last entry.
local function stream_text(S)
  local parts, last = {}, nil
  for _, e in ipairs(redis.call('XRANGE', S, '-', '+')) do
    last = e[1]
    local f = e[2]
    for i = 1, #f, 2 do if f[i] == 'x' then parts[#parts+1] = f[i+1] end end
  end
  return table.concat(parts), last
end

-- A reply left 'streaming' without a lock holder lost its replica: keep its partial text,
-- mark it interrupted and end its stream so every reader stops waiting.
local function interrupt(mid, retention)
  local raw = redis.call('HGET', M, mid)
  if not raw then return nil end
  local m = cjson.decode(raw)
  if m.status ~= 'streaming' then return raw end
  local S = stream_key(mid)
  local text, last = stream_text(S)
  m.content = text
  m.status = 'interrupted'
  raw = cjson.encode(m)
  redis.call('HSET', M, mid, raw)
  local final = last and string.match(last, '^(%d+)') or '0'
  redis.pcall('XADD', S, final..'-1', 'k', 'interrupted')
  redis.call('EXPIRE', S, retention)
  return raw
end

local function interrupt_if_orphaned(retention)
  local live = redis.call('HGET', P, 'live')
  if live and redis.call('GET', G) ~= live then interrupt(live, retention) end
  return live
end
"""

# KEYS: the session's FAMILY.
# ARGV: ttl, lease_ms, retention, mode (message|regenerate|edit|continue),
#       client_message_id, user_id, user_json, reply_id, reply_json, token_budget,
#       target (the message to edit or continue), edit_content, max_context_messages,
#       token_hash, owner_hash, cookie_allowed, max_messages (0: none)
# continue: the target is the last message, a reply whose status is in CONTINUABLE; it is
# written on (reply_id is the target's id), its stream starting with the text it has, and
# the context ends with it rather than with a user message.
# The caller's credentials are checked here, not in a read before: a turn is one round trip.
# token_budget is for the whole context: the system prompt's estimate is taken off it here.
# Returns {'ok', system_prompt, user_json (continue: the reply's), context...newest first}
#       | {'dup', user_json, reply_json} | {'busy', reply_id} | {'bad', reason}
#       | {'denied'} | {'csrf'} | {'full'} (a new message would pass max_messages)
BEGIN_TURN = (
    _COMMON
    + r"""
local ttl, lease, retention, mode, cmid = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local user_id, user_json, reply_id, reply_json = ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local token_budget, target, edit_content = tonumber(ARGV[10]), ARGV[11], ARGV[12]
local most = tonumber(ARGV[13])

local CONTINUABLE = {__CONTINUABLE__}
local access = authorized(ARGV[14], ARGV[15], ARGV[16])
if access ~= 'ok' then return {access} end
-- A text's tokens when no count was stored: about four UTF-8 bytes each.
local function estimate(text) return math.ceil(#text / 4) end
local system = redis.call('HGET', P, 'system') or ''
local budget = math.max(token_budget - estimate(system), 1)
if cmid ~= '' then
  local um = redis.call('HGET', X, 'c:'..cmid)
  -- Our own id means this very call is being retried: carry on, it is not a duplicate.
  if um and um ~= user_id then
    local rm = redis.call('HGET', X, 'r:'..um)
    return {'dup', redis.call('HGET', M, um) or '', rm and redis.call('HGET', M, rm) or ''}
  end
end
local holder = redis.call('GET', G)
if holder and holder ~= reply_id then return {'busy', holder} end
-- A new message adds itself and its reply; regenerate and edit replace what they answer.
local most_messages = tonumber(ARGV[17])
if not holder and mode == 'message' and most_messages > 0
    and redis.call('LLEN', O) + 2 > most_messages then
  return {'full'}
end

if not holder then
  local live = interrupt_if_orphaned(retention)
  if mode == 'continue' then
    if redis.call('LINDEX', O, -1) ~= reply_id then return {'bad', 'not_continuable'} end
    local rm = cjson.decode(redis.call('HGET', M, reply_id))
    if rm.role ~= 'assistant' or not CONTINUABLE[rm.status] then
      return {'bad', 'not_continuable'}
    end
    rm.status, rm.error, rm.usage, rm.tokens = 'streaming', nil, nil, nil
    redis.call('HSET', M, reply_id, cjson.encode(rm))
    local S = stream_key(reply_id)
    redis.call('DEL', S)
    if rm.content ~= '' then
      -- Entry ids count characters, as Python does: UTF-8 bytes that start a character.
      local chars = select(2, string.gsub(rm.content, '[^\128-\191]', ''))
      redis.call('XADD', S, chars..'-0', 'x', rm.content)
      redis.call('EXPIRE', S, retention)
    end
    redis.call('SET', G, reply_id, 'PX', lease)
    redis.call('HSET', P, 'live', reply_id)
    user_id = reply_id
  elseif mode ~= 'message' then
    local tail = redis.call('LRANGE', O, -2, -1)
    local answer, drop = tail[#tail], nil
    if not answer then return {'bad', 'empty'} end
    if cjson.decode(redis.call('HGET', M, answer)).role == 'assistant' then
      drop, answer = answer, tail[#tail - 1]
    end
    if not answer then return {'bad', 'empty'} end
    local um = cjson.decode(redis.call('HGET', M, answer))
    if um.role ~= 'user' then return {'bad', 'empty'} end
    if mode == 'edit' and answer ~= target then return {'bad', 'not_last'} end
    if drop then
      redis.call('RPOP', O)
      redis.call('HDEL', M, drop)
    end
    if mode == 'edit' then
      um.content = edit_content
      um.tokens = nil
      redis.call('HSET', M, answer, cjson.encode(um))
    end
    user_id = answer
  else
    if redis.call('HSETNX', M, user_id, user_json) == 1 then redis.call('RPUSH', O, user_id) end
    if cmid ~= '' then redis.call('HSET', X, 'c:'..cmid, user_id) end
  end
  if mode ~= 'continue' then
    if live then redis.call('DEL', stream_key(live)) end
    redis.call('SET', G, reply_id, 'PX', lease)
    if redis.call('HSETNX', M, reply_id, reply_json) == 1 then redis.call('RPUSH', O, reply_id) end
    redis.call('HSET', X, 'r:'..user_id, reply_id)
    redis.call('HSET', P, 'live', reply_id)
  end
elseif mode == 'continue' then
  user_id = reply_id  -- a retry of a start that already ran
elseif mode ~= 'message' then
  -- A retry of a start that already ran: the reply is last, its user message just before.
  user_id = redis.call('LINDEX', O, -2)
end
renew(ttl)

-- Context: the newest whole messages that fit the token budget, newest first.
local out = {'ok', system, redis.call('HGET', M, user_id)}
local head = #out  -- the context's messages follow
local used, hi, page = 0, -1, 32
-- A new reply is not context; a continued one is its end.
local skip = mode == 'continue' and '' or reply_id
while true do
  local ids = redis.call('LRANGE', O, hi - page + 1, hi)
  if #ids == 0 then break end
  local blobs = redis.call('HMGET', M, unpack(ids))
  for i = #ids, 1, -1 do
    if ids[i] ~= skip and blobs[i] then
      local m = cjson.decode(blobs[i])
      if m.content ~= '' then
        local t = tonumber(m.tokens) or estimate(m.content)
        if #out > head and (used + t > budget or #out - head >= most) then return out end
        used = used + t
        out[#out + 1] = blobs[i]
      end
    end
  end
  if #ids < page then break end
  hi = hi - page
end
return out
"""
)

BEGIN_TURN = BEGIN_TURN.replace(
    "__CONTINUABLE__", ", ".join(f"{status} = true" for status in sorted(CONTINUABLE))
)

# KEYS: S (the stream), S:w, then G (the session's lock) when the lease is renewed.
# ARGV: end_offset, text, then only when due: retention ('' when not), then lease_ms. The
# envelope (EVALSHA, sha, keys, arguments) is the whole cost of a write beyond its text, so
# the entry id is built here, and the retention (first write, then each half retention) and
# the lease renewal (each third of the lease) ride along only when due.
# Returns 1 when a reader elsewhere tails the stream (S:w, set by readers), else 0.
# Only a write that sets the expiry may create the stream: a stream deleted under its writer
# (the session was deleted) is not brought back without one.
FLUSH = r"""
local S, W, G = KEYS[1], KEYS[2], KEYS[3]
local end_offset, text, retention, lease = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if text ~= '' then
  if retention and retention ~= '' then
    redis.pcall('XADD', S, end_offset..'-0', 'x', text)
    redis.call('EXPIRE', S, retention)
  else
    redis.pcall('XADD', S, 'NOMKSTREAM', end_offset..'-0', 'x', text)
  end
end
if G then
  if redis.call('GET', G) == string.match(S, ':r:([^:]*)$') then
    redis.call('PEXPIRE', G, lease)
  end
end
return redis.call('EXISTS', W)
"""

# KEYS: M (P:m), S (the reply's stream), G (P:g).
# ARGV: reply_id, final_json, kind, last_text_id, last_text, terminal_id, retention
FINISH = r"""
local M, S, G = KEYS[1], KEYS[2], KEYS[3]
local mid, final, kind, text_id, text, terminal_id, retention =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
if redis.call('HEXISTS', M, mid) == 0 then return 0 end
redis.call('HSET', M, mid, final)
if text ~= '' then redis.pcall('XADD', S, text_id, 'x', text) end
redis.pcall('XADD', S, terminal_id, 'k', kind)
redis.call('EXPIRE', S, retention)
if redis.call('GET', G) == mid then redis.call('DEL', G) end
return 1
"""

# KEYS: the session's FAMILY, then the reply's stream. ARGV: reply_id, retention.
# Returns the message JSON (marked interrupted when its writer is gone), or nil when it does
# not exist.
CHECK_LIVE = (
    _COMMON
    + r"""
local mid, retention = ARGV[1], ARGV[2]
if redis.call('GET', G) == mid then return redis.call('HGET', M, mid) end
return interrupt(mid, retention)
"""
)

# KEYS: the session's FAMILY.
# ARGV: ttl, retention, limit (0: all), before (a message id, or '': the newest).
# Returns {lock_holder_or_'', live_text, has_more ('1'|'0'), messages...}, {'gone'} when
# `before` is not a message of the session, or nil when the session does not exist.
READ_HISTORY = (
    _COMMON
    + r"""
local ttl, retention, limit, before = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
if redis.call('EXISTS', P) == 0 then return false end
local stop = -1
if before ~= '' then
  -- Bounded: a session holds at most MAX_MESSAGES_PER_SESSION messages.
  local at = redis.call('LPOS', O, before)
  if not at then return {'gone'} end
  stop = at - 1
else
  stop = redis.call('LLEN', O) - 1
end
local start = limit > 0 and math.max(stop - limit + 1, 0) or 0
local live = interrupt_if_orphaned(retention)
renew(ttl)
local out = {'', '', start > 0 and '1' or '0'}
if live then
  local raw = redis.call('HGET', M, live)
  if raw and cjson.decode(raw).status == 'streaming' then
    out[1] = live
    out[2] = stream_text(stream_key(live))
  end
end
local ids = stop >= 0 and redis.call('LRANGE', O, start, stop) or {}
for i = 1, #ids, 500 do
  local blobs = redis.call('HMGET', M, unpack(ids, i, math.min(i + 499, #ids)))
  for _, b in ipairs(blobs) do if b then out[#out + 1] = b end end
end
return out
"""
)

# KEYS: the session's FAMILY. ARGV: ttl, token_hash, owner_hash, cookie_allowed.
# Returns {'ok', the session's meta hash as a flat list...} | {'denied'} | {'csrf'}. Every
# request but a turn's start reads it first, so this is where a session's expiry is renewed,
# once the caller is authorized.
READ_META = (
    _COMMON
    + r"""
local access = authorized(ARGV[2], ARGV[3], ARGV[4])
if access ~= 'ok' then return {access} end
renew(ARGV[1])
local out = redis.call('HGETALL', P)
table.insert(out, 1, 'ok')
return out
"""
)

# KEYS: P. ARGV: ttl, then the meta hash's fields and values. A new session's hash, with its
# expiry in the same step: no moment without one.
CREATE = r"""
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('EXPIRE', KEYS[1], ARGV[1])
"""

# KEYS: a browser's index (sorted set of session ids). ARGV: session id, score, ttl,
# max_sessions (0: none). Returns 1, or 0 when the index already holds max_sessions ids (some
# may be of sessions that expired: the caller drops those and tries again).
INDEX = r"""
local owned, sid, most = KEYS[1], ARGV[1], tonumber(ARGV[4])
if most > 0 and not redis.call('ZSCORE', owned, sid) and redis.call('ZCARD', owned) >= most then
  return 0
end
redis.call('ZADD', owned, ARGV[2], sid)
redis.call('EXPIRE', owned, ARGV[3])
return 1
"""

# KEYS: the session's FAMILY. Deletes every key of the session, the stream of the reply it
# was writing included; returns that reply's id, or nil.
DELETE = (
    _COMMON
    + r"""
local live = redis.call('HGET', P, 'live')
redis.call('DEL', P, M, O, X, G)
if live then redis.call('DEL', stream_key(live), stream_key(live)..':w') end
return live
"""
)

# KEYS: P. ARGV: unless_named ('1': not when a person named the chat), then the meta hash's
# fields and values to set. Returns 1 when set; 0 when the session is gone (nothing is
# written: a key without its expiry would never go) or, with unless_named, was named by a
# person (a generated title loses to a rename made while it was being written).
UPDATE_META = r"""
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] == '1' and redis.call('HGET', KEYS[1], 'named') == '1' then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
return 1
"""
