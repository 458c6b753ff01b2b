"""Lua scripts: each multi-key change to a session is one atomic, idempotent round trip.

redis-py retries a command whose connection failed, and the first attempt may already have
run, so every script is written to give the same result when run twice: appends go through
HSETNX, stream entries carry explicit ids (a repeated XADD fails harmlessly), and a retried
turn start recognises its own generation lock.

Keys of session P: P (meta hash), P:m (message id -> JSON), P:o (message ids in order),
P:x (idempotency index), P:g (generation lock, value = reply id). A reply's stream is
<prefix>:r:<reply id> (not under P: every stream write names it, and P would double the key),
with <prefix>:r:<reply id>:w set (expiring) while someone tails it from Redis.
"""

from __future__ import annotations

_STREAM_KEY = r"""
-- P is <prefix>:s:<session id>; the reply's stream is <prefix>:r:<reply id>.
local function stream_key(P, mid)
  return (string.gsub(P, ':s:[^:]*$', ':r:'..mid))
end
"""

_COMMON = (
    _STREAM_KEY
    + r"""
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
local function authorized(P, token_hash, owner_hash, cookie_allowed)
  local stored = redis.call('HMGET', P, 'th', 'owner')
  if same(stored[1], token_hash) then return 'ok' end
  if same(stored[2], owner_hash) then return cookie_allowed == '1' and 'ok' or 'csrf' end
  return 'denied'
end

local function renew(P, ttl)
  for _, k in ipairs({P, P..':m', P..':o', P..':x'}) do redis.call('EXPIRE', k, ttl) end
  local tk = redis.call('HGET', P, 'tk')
  if tk then redis.call('EXPIRE', tk, ttl) end
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
local function interrupt(P, mid, retention)
  local raw = redis.call('HGET', P..':m', mid)
  if not raw then return nil end
  local m = cjson.decode(raw)
  if m.status ~= 'streaming' then return raw end
  local S = stream_key(P, mid)
  local text, last = stream_text(S)
  m.content = text
  m.status = 'interrupted'
  raw = cjson.encode(m)
  redis.call('HSET', P..':m', mid, raw)
  local final = last and string.match(last, '^(%d+)') or '0'
  redis.pcall('XADD', S, final..'-1', 'k', 'interrupted')
  redis.call('EXPIRE', S, retention)
  return raw
end

local function interrupt_if_orphaned(P, retention)
  local live = redis.call('HGET', P, 'live')
  if live and redis.call('GET', P..':g') ~= live then interrupt(P, live, retention) end
  return live
end
"""
)

# ARGV: P, ttl, lease_ms, retention, mode (message|regenerate|edit), client_message_id,
#       user_id, user_json, reply_id, reply_json, token_budget, edit_target, edit_content,
#       max_context_messages, token_hash, owner_hash, cookie_allowed, max_messages (0: none)
# The caller's credentials are checked here, not in a read before: a turn is one round trip.
# token_budget is for the whole context: the system prompt's estimate is taken off it here.
# Returns {'ok', system_prompt, user_json, context...newest first}
#       | {'dup', user_json, reply_json} | {'busy', reply_id} | {'bad', reason}
#       | {'denied'} | {'csrf'} | {'full'} (a new message would pass max_messages)
BEGIN_TURN = (
    _COMMON
    + r"""
local P, ttl, lease, retention, mode, cmid = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local user_id, user_json, reply_id, reply_json = ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local most = tonumber(ARGV[14])
local M, O, X, G = P..':m', P..':o', P..':x', P..':g'

local access = authorized(P, ARGV[15], ARGV[16], ARGV[17])
if access ~= 'ok' then return {access} end
-- A text's tokens when no count was stored: about four UTF-8 bytes each.
local function estimate(text) return math.ceil(#text / 4) end
local system = redis.call('HGET', P, 'system') or ''
local budget = math.max(tonumber(ARGV[11]) - estimate(system), 1)
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
local most_messages = tonumber(ARGV[18])
if not holder and mode == 'message' and most_messages > 0
    and redis.call('LLEN', O) + 2 > most_messages then
  return {'full'}
end

if not holder then
  local live = interrupt_if_orphaned(P, retention)
  if mode ~= 'message' then
    local tail = redis.call('LRANGE', O, -2, -1)
    local answer, drop = tail[#tail], nil
    if not answer then return {'bad', 'empty'} end
    if cjson.decode(redis.call('HGET', M, answer)).role == 'assistant' then
      drop, answer = answer, tail[#tail - 1]
    end
    if not answer then return {'bad', 'empty'} end
    local um = cjson.decode(redis.call('HGET', M, answer))
    if um.role ~= 'user' then return {'bad', 'empty'} end
    if mode == 'edit' and answer ~= ARGV[12] then return {'bad', 'not_last'} end
    if drop then
      redis.call('RPOP', O)
      redis.call('HDEL', M, drop)
    end
    if mode == 'edit' then
      um.content = ARGV[13]
      um.tokens = nil
      redis.call('HSET', M, answer, cjson.encode(um))
    end
    user_id = answer
  else
    if redis.call('HSETNX', M, user_id, user_json) == 1 then redis.call('RPUSH', O, user_id) end
    if cmid ~= '' then redis.call('HSET', X, 'c:'..cmid, user_id) end
  end
  if live then redis.call('DEL', stream_key(P, live)) end
  redis.call('SET', G, reply_id, 'PX', lease)
  if redis.call('HSETNX', M, reply_id, reply_json) == 1 then redis.call('RPUSH', O, reply_id) end
  redis.call('HSET', X, 'r:'..user_id, reply_id)
  redis.call('HSET', P, 'live', reply_id)
elseif mode ~= 'message' then
  -- A retry of a start that already ran: the reply is last, its user message just before.
  user_id = redis.call('LINDEX', O, -2)
end
renew(P, ttl)

-- Context: the newest whole messages that fit the token budget, newest first.
local out = {'ok', system, redis.call('HGET', M, user_id)}
local head = #out  -- the context's messages follow
local used, hi, page = 0, -1, 32
while true do
  local ids = redis.call('LRANGE', O, hi - page + 1, hi)
  if #ids == 0 then break end
  local blobs = redis.call('HMGET', M, unpack(ids))
  for i = #ids, 1, -1 do
    if ids[i] ~= reply_id and blobs[i] then
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

# ARGV: P, tk (the token's key), owner key ('' for none), ttl, owner_ttl, session id,
#       created (a timestamp), max_sessions (0: none), then the meta hash's fields and values.
# Returns 1, or 0 when the browser already keeps max_sessions. A browser's set of sessions
# keeps the ids of sessions that expired until it is listed: at the limit, those are dropped
# first (a loop bounded by max_sessions, run only at the limit).
CREATE_SESSION = r"""
local P, tk, owned, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local sid, most = ARGV[6], tonumber(ARGV[8])
if owned ~= '' and most > 0 and redis.call('ZCARD', owned) >= most then
  local base = string.sub(P, 1, #P - #sid)
  for _, other in ipairs(redis.call('ZRANGE', owned, 0, most - 1)) do
    if redis.call('EXISTS', base..other) == 0 then redis.call('ZREM', owned, other) end
  end
  if redis.call('ZCARD', owned) >= most then return 0 end
end
redis.call('HSET', P, unpack(ARGV, 9))
redis.call('EXPIRE', P, ttl)
redis.call('SET', tk, sid, 'EX', ttl)
if owned ~= '' then
  redis.call('ZADD', owned, ARGV[7], sid)
  redis.call('EXPIRE', owned, ARGV[5])
end
return 1
"""

# ARGV: S (the stream's key), end_offset, text, then only when due: retention ('' when not),
# then P and lease_ms. The envelope (EVALSHA, sha, arguments) is the whole cost of a write
# beyond its text, so the entry id is built here, and the retention (first write, then each
# half retention) and the lease renewal (each third of the lease) ride along only when due.
# Returns 1 when a reader elsewhere tails the stream (S:w, set by readers), else 0.
FLUSH = r"""
local S = ARGV[1]
if ARGV[3] ~= '' then
  redis.pcall('XADD', S, ARGV[2]..'-0', 'x', ARGV[3])
  if ARGV[4] and ARGV[4] ~= '' then redis.call('EXPIRE', S, ARGV[4]) end
end
local P = ARGV[5]
if P then
  local G, mid = P..':g', string.match(S, ':r:([^:]*)$')
  if redis.call('GET', G) == mid then redis.call('PEXPIRE', G, ARGV[6]) end
end
return redis.call('EXISTS', S..':w')
"""

# ARGV: P, reply_id, final_json, kind, last_text_id, last_text, terminal_id, retention
FINISH = (
    _STREAM_KEY
    + r"""
local P, mid = ARGV[1], ARGV[2]
if redis.call('HEXISTS', P..':m', mid) == 0 then return 0 end
local S = stream_key(P, mid)
redis.call('HSET', P..':m', mid, ARGV[3])
if ARGV[6] ~= '' then redis.pcall('XADD', S, ARGV[5], 'x', ARGV[6]) end
redis.pcall('XADD', S, ARGV[7], 'k', ARGV[4])
redis.call('EXPIRE', S, ARGV[8])
if redis.call('GET', P..':g') == mid then redis.call('DEL', P..':g') end
return 1
"""
)

# ARGV: P, reply_id, retention. Returns the message JSON (marked interrupted when its
# writer is gone), or nil when it does not exist.
CHECK_LIVE = (
    _COMMON
    + r"""
local P, mid = ARGV[1], ARGV[2]
if redis.call('GET', P..':g') == mid then return redis.call('HGET', P..':m', mid) end
return interrupt(P, mid, ARGV[3])
"""
)

# ARGV: P, ttl, retention, limit (0: all). Returns {lock_holder_or_'', live_text, messages...}.
READ_HISTORY = (
    _COMMON
    + r"""
local P, ttl, retention, limit = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
if redis.call('EXISTS', P) == 0 then return false end
local live = interrupt_if_orphaned(P, retention)
renew(P, ttl)
local out = {'', ''}
if live then
  local raw = redis.call('HGET', P..':m', live)
  if raw and cjson.decode(raw).status == 'streaming' then
    out[1] = live
    out[2] = stream_text(stream_key(P, live))
  end
end
local ids = redis.call('LRANGE', P..':o', limit > 0 and -limit or 0, -1)
for i = 1, #ids, 500 do
  local blobs = redis.call('HMGET', P..':m', unpack(ids, i, math.min(i + 499, #ids)))
  for _, b in ipairs(blobs) do if b then out[#out + 1] = b end end
end
return out
"""
)

# ARGV: P, ttl, token_hash, owner_hash, cookie_allowed. Returns {'ok', the session's meta
# hash as a flat list...} | {'denied'} | {'csrf'}. Every request but a turn's start reads it
# first, so this is where a session's expiry is renewed, once the caller is authorized.
READ_META = (
    _COMMON
    + r"""
local access = authorized(ARGV[1], ARGV[3], ARGV[4], ARGV[5])
if access ~= 'ok' then return {access} end
renew(ARGV[1], ARGV[2])
local out = redis.call('HGETALL', ARGV[1])
table.insert(out, 1, 'ok')
return out
"""
)
