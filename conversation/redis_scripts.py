"""Lua scripts: each multi-key change to a session is one atomic, idempotent round trip.

redis-py retries a command whose connection failed, and the first attempt may already have
run, so every script is written to give the same result when run twice: appends go through
HSETNX, stream entries carry explicit ids (a repeated XADD fails harmlessly), and a retried
turn start recognises its own generation lock.

Keys of session P = <prefix>:s:{<session id>}: P (meta hash), P:m (message id -> JSON),
P:o (the active path: message ids in order), P:x (idempotency index), P:g (generation lock,
value = reply id, a lease renewed while writing), P:k (the message tree), P:r:<reply id> (the
reply's stream: entries `<end offset>-0` with the new text in `x`; while the reply waits in
the model's queue, `<offset>-<n>` with its place in `q`; last `<final>-<n>` with the outcome
in `k`) and P:r:<reply id>:w (set, expiring, while someone tails that stream from
Redis). The braces are a Redis Cluster hash tag: every key of a session lives in one slot, so
each script below touches one slot only. Every script gets every key it touches in KEYS (the
session's family in the order of FAMILY, then the streams it names), as Redis asks of scripts:
a cluster, ACL key patterns and proxies in front of Redis route or check a script by its KEYS.

P's `live` field names the reply last started. A script may need its stream without the
caller knowing that reply for sure (an orphaned reply to mark interrupted, an old stream to
drop, the text of a reply being written): the caller passes the stream of the reply it
believes live (Store remembers the last one it saw per session), and a script that needs the
stream of another one writes nothing and answers {'stale', live}; the caller calls again
with that reply's stream. A second call follows only a memory out of date (the session's
last turn started on another replica), a third only a turn started between the two.

The message tree: each message's JSON names its `parent` (the message before it on its path;
none for the first). Editing a user message or regenerating a reply adds a sibling and never
overwrites. P:k holds, per parent id ('' for the first messages), `c:<parent>` -> JSON list of
its children in the order they were made, and `a:<parent>` -> the child last on the active
path, so switching to a message brings back the branch below it as it was last shown. P:o
stays the active path, so reading it costs what reading a history without branches does; a
history read adds one HMGET of the `c:` fields of the page's parents. Sessions stored before
the tree get their P:k from P:o the first time a turn or a switch needs it (`plant_tree`).

Arguments: each script names its ARGV in a tuple below; `argv_locals` unpacks them into Lua
locals of those names at the script's top and `argv` builds the positional list from keyword
values, so the order is written once.
"""

from __future__ import annotations

from collections.abc import Mapping

from conversation.models import CONTINUABLE

ScriptArg = str | int | float

# The suffixes of a session's keys after P, in the order scripts receive them in KEYS.
FAMILY = ("", ":m", ":o", ":x", ":g", ":k")


def argv_locals(names: tuple[str, ...]) -> str:
    """Lua that unpacks ARGV into locals named `names`, in that order."""
    values = ", ".join(f"ARGV[{i}]" for i in range(1, len(names) + 1))
    return f"local {', '.join(names)} = {values}\n"


def argv(names: tuple[str, ...], values: Mapping[str, ScriptArg]) -> list[ScriptArg]:
    """A script's ARGV in the order of `names`, each given once by name."""
    if missing := set(names) ^ set(values):
        raise ValueError(f"script arguments missing or unknown: {sorted(missing)}")
    return [values[name] for name in names]


_COMMON = r"""
local P, M, O, X, G, K = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]

-- The reply whose stream S (P:r:<reply id>, as given in KEYS) is, or nil when none was given.
local function reply_of(S) return S and string.match(S, ':r:([^:]*)$') end

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
  for _, k in ipairs({P, M, O, X, K}) do redis.call('EXPIRE', k, ttl) end
end

-- A message's JSON naming its parent: the field is spliced in rather than the JSON decoded
-- and encoded again (cjson would turn an empty list into an object). Ids are hex.
local function with_parent(raw, parent)
  if parent == '' then return raw end
  return '{"parent":"'..parent..'",'..string.sub(raw, 2)
end

-- Record `child` as the newest child of `parent` ('' for the first messages), and as the
-- one on the active path.
local function adopt(parent, child)
  local raw = redis.call('HGET', K, 'c:'..parent)
  local kids = raw and cjson.decode(raw) or {}
  kids[#kids + 1] = child
  redis.call('HSET', K, 'c:'..parent, cjson.encode(kids), 'a:'..parent, child)
end

-- A session stored before the tree: its path becomes the tree's one branch, each message
-- naming its parent. Once per session (P:k exists afterwards), bounded by its length.
local function plant_tree()
  if redis.call('EXISTS', K) == 1 then return end
  local ids = redis.call('LRANGE', O, 0, -1)
  local parent = ''
  for _, id in ipairs(ids) do
    local raw = redis.call('HGET', M, id)
    if raw and not string.find(raw, '"parent":', 1, true) then
      redis.call('HSET', M, id, with_parent(raw, parent))
    end
    redis.call('HSET', K, 'c:'..parent, cjson.encode({id}), 'a:'..parent, id)
    parent = id
  end
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
-- mark it interrupted and end its stream S so every reader stops waiting. S is touched only
-- when the reply is 'streaming'.
local function interrupt(mid, S, retention)
  local raw = redis.call('HGET', M, mid)
  if not raw then return nil end
  local m = cjson.decode(raw)
  if m.status ~= 'streaming' then return raw end
  local text, last = stream_text(S)
  m.content = text
  m.status = 'interrupted'
  raw = cjson.encode(m)
  redis.call('HSET', M, mid, raw)
  local final = last and string.match(last, '^(%d+)') or '0'
  redis.pcall('XADD', S, final..'-*', 'k', 'interrupted')
  redis.call('EXPIRE', S, retention)
  return raw
end

-- P's `live` reply (the one last started, or nil), when its writer is gone; L is its stream.
local function interrupt_if_orphaned(live, L, retention)
  if live and redis.call('GET', G) ~= live then interrupt(live, L, retention) end
end
"""

BEGIN_TURN_ARGV = (
    "ttl",
    "lease",  # ms
    "retention",
    "mode",  # message | regenerate | edit | continue
    "cmid",  # the client's message id, or ''
    "user_id",  # message: the new message; edit: the new version; else unused
    "user_json",
    "reply_id",  # continue: the reply to write on
    "reply_json",
    "token_budget",  # for the whole context: the system prompt's estimate is taken off here
    "target",  # edit: the user message to edit; regenerate: the reply to redo ('': the last)
    "most_context",  # messages in the context at most
    "token_hash",
    "owner_hash",
    "cookie_allowed",
    "max_path",  # messages on the active path at most (0: none)
    "max_stored",  # messages of every branch at most (0: none)
)

# KEYS: the session's FAMILY, then R (the stream of reply_id), then L (the stream of the reply
# P's `live` names, as the caller last knew it; none when it knew none). ARGV: BEGIN_TURN_ARGV.
# message: a user message and its reply, after the last message of the active path.
# edit: a new version of a user message on the active path, a sibling of it (same parent),
# and a reply to it; the active path now ends with them. regenerate: a new reply to the
# user message before the target reply, a sibling of it. Nothing is overwritten.
# continue: the target is the last message, a reply whose status is in CONTINUABLE; it is
# written on (reply_id is the target's id), its stream starting with the text it has, and
# the context ends with it rather than with a user message.
# The caller's credentials are checked here, not in a read before: a turn is one round trip.
# Returns {'ok', system_prompt, model ('' for the default), wants_title ('1' or '0'), user_json
# (continue: the reply's), context...newest first}
#       | {'dup', user_json, reply_json} | {'busy', reply_id} | {'bad', reason}
#       | {'denied'} | {'csrf'} | {'full'} (a new message would pass max_path)
#       | {'full_tree'} (the new messages would pass max_stored)
#       | {'stale', live} (L is not the stream of P's `live`: nothing was written; call again
#         with that reply's stream as L)
BEGIN_TURN = (
    _COMMON
    + argv_locals(BEGIN_TURN_ARGV)
    + r"""
local R, L = KEYS[7], KEYS[8]
token_budget, most_context = tonumber(token_budget), tonumber(most_context)
max_path, max_stored = tonumber(max_path), tonumber(max_stored)

local CONTINUABLE = {__CONTINUABLE__}
local access = authorized(token_hash, owner_hash, cookie_allowed)
if access ~= 'ok' then return {access} end
-- A text's tokens when no count was stored: about four UTF-8 bytes each.
local function estimate(text) return math.ceil(#text / 4) end
local chat = redis.call('HMGET', P, 'system', 'model', 'named', 'titled')
local system, model, named, titled = chat[1] or '', chat[2], chat[3], chat[4]
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
if not holder then
  -- A new message lengthens the active path; an edit or a regenerate replaces its tail.
  if mode == 'message' and max_path > 0 and redis.call('LLEN', O) + 2 > max_path then
    return {'full'}
  end
  local adds = ({message = 2, edit = 2, regenerate = 1})[mode] or 0
  if adds > 0 and max_stored > 0 and redis.call('HLEN', M) + adds > max_stored then
    return {'full_tree'}
  end
end

if not holder then
  -- The old live reply's stream is dropped below (or interrupted first): it must be L.
  local live = redis.call('HGET', P, 'live')
  if live and live ~= reply_of(L) then return {'stale', live} end
  interrupt_if_orphaned(live, L, retention)
  plant_tree()
  if mode == 'continue' then
    if redis.call('LINDEX', O, -1) ~= reply_id then return {'bad', 'not_continuable'} end
    local rm = cjson.decode(redis.call('HGET', M, reply_id))
    if rm.role ~= 'assistant' or not CONTINUABLE[rm.status] then
      return {'bad', 'not_continuable'}
    end
    rm.status, rm.error, rm.usage, rm.tokens = 'streaming', nil, nil, nil
    redis.call('HSET', M, reply_id, cjson.encode(rm))
    redis.call('DEL', R)
    if rm.content ~= '' then
      -- Entry ids count characters, as Python does: UTF-8 bytes that start a character.
      local chars = select(2, string.gsub(rm.content, '[^\128-\191]', ''))
      redis.call('XADD', R, chars..'-0', 'x', rm.content)
      redis.call('EXPIRE', R, retention)
    end
    redis.call('SET', G, reply_id, 'PX', lease)
    redis.call('HSET', P, 'live', reply_id)
    user_id = reply_id
  elseif mode == 'message' then
    local parent = redis.call('LINDEX', O, -1) or ''
    if redis.call('HSETNX', M, user_id, with_parent(user_json, parent)) == 1 then
      redis.call('RPUSH', O, user_id)
      adopt(parent, user_id)
    end
    if cmid ~= '' then redis.call('HSET', X, 'c:'..cmid, user_id) end
  else
    -- The position on the active path of the message edited or answered again.
    local at
    if target == '' then
      at = redis.call('LLEN', O) - 1
      if at < 0 then return {'bad', 'empty'} end
    else
      at = redis.call('LPOS', O, target)
      if not at then return {'bad', 'not_on_path'} end
    end
    local m = cjson.decode(redis.call('HGET', M, redis.call('LINDEX', O, at)))
    if mode == 'edit' then
      if m.role ~= 'user' then return {'bad', 'not_user'} end
      local parent = at > 0 and redis.call('LINDEX', O, at - 1) or ''
      if at > 0 then redis.call('LTRIM', O, 0, at - 1) else redis.call('DEL', O) end
      redis.call('HSETNX', M, user_id, with_parent(user_json, parent))
      redis.call('RPUSH', O, user_id)
      adopt(parent, user_id)
    else
      if m.role == 'assistant' then
        at = at - 1
      elseif target ~= '' then
        return {'bad', 'not_reply'}
      end
      -- A last user message without a reply (the trees of older versions) is answered.
      local answer = at >= 0 and redis.call('LINDEX', O, at)
      if not answer or cjson.decode(redis.call('HGET', M, answer)).role ~= 'user' then
        return {'bad', 'empty'}
      end
      redis.call('LTRIM', O, 0, at)
      user_id = answer
    end
  end
  if mode ~= 'continue' then
    if live then redis.call('DEL', L) end
    redis.call('SET', G, reply_id, 'PX', lease)
    if redis.call('HSETNX', M, reply_id, with_parent(reply_json, user_id)) == 1 then
      redis.call('RPUSH', O, reply_id)
      adopt(user_id, reply_id)
    end
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

-- Context: the newest whole messages of the active path that fit the token budget, newest
-- first.
local wants_title = (named ~= '1' and titled ~= '1') and '1' or '0'
local out = {'ok', system, model or '', wants_title, redis.call('HGET', M, user_id)}
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
        if #out > head and (used + t > budget or #out - head >= most_context) then
          return out
        end
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
# ARGV: end_offset, text, then only when due: retention ('' when not), then lease_ms.
# When each is due, and why a write carries no more: conversation/flush_schedule.py.
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

# KEYS: S (the reply's stream). ARGV: the reply's length so far, its place in the model's
# queue, retention. Before the reply's first text (of this turn): a client resuming on
# another replica learns the place. The entry's id goes on from the length (`<length>-<n>`),
# so the text's entries (`<end>-0`, end > length) and the terminal one (`<end>-*`) follow it.
QUEUED = r"""
local length, place, retention = ARGV[1], ARGV[2], ARGV[3]
redis.pcall('XADD', KEYS[1], length..'-*', 'q', place)
redis.call('EXPIRE', KEYS[1], retention)
"""

FINISH_ARGV = (
    "mid",  # the reply
    "final",  # its JSON
    "kind",  # its status, the stream's last entry
    "text_id",  # the entry id of the text not written yet
    "text",
    "terminal_id",
    "retention",
)

# KEYS: M (P:m), S (the reply's stream), G (P:g). ARGV: FINISH_ARGV.
FINISH = (
    "local M, S, G = KEYS[1], KEYS[2], KEYS[3]\n"
    + argv_locals(FINISH_ARGV)
    + r"""
if redis.call('HEXISTS', M, mid) == 0 then return 0 end
-- A retry of a finish that ran (its answer lost): the terminal entry's id is not fixed
-- (`<end>-*`, after any queue places), so it must not be written twice.
if redis.call('HGET', M, mid) == final then return 1 end
redis.call('HSET', M, mid, final)
if text ~= '' then redis.pcall('XADD', S, text_id, 'x', text) end
redis.pcall('XADD', S, terminal_id, 'k', kind)
redis.call('EXPIRE', S, retention)
if redis.call('GET', G) == mid then redis.call('DEL', G) end
return 1
"""
)

# KEYS: the session's FAMILY, then the reply's stream. ARGV: reply_id, retention.
# Returns the message JSON (marked interrupted when its writer is gone), or nil when it does
# not exist.
CHECK_LIVE = (
    _COMMON
    + r"""
local mid, retention = ARGV[1], ARGV[2]
if redis.call('GET', G) == mid then return redis.call('HGET', M, mid) end
return interrupt(mid, KEYS[7], retention)
"""
)

# KEYS: the session's FAMILY, then L (the stream of the reply P's `live` names, as the caller
# last knew it; none when it knew none).
# ARGV: ttl, retention, limit (0: all), before (a message id, or '': the newest).
# Returns {lock_holder_or_'', live_text, has_more ('1'|'0'), then for each message its JSON
# and '<sibling index> <sibling count>'...}, {'gone'} when `before` is not a message of the
# active path, {'stale', live} when that reply is being written (or was, by a writer now gone)
# and L is not its stream (nothing was written: call again with its stream as L), or nil when
# the session does not exist.
READ_HISTORY = (
    _COMMON
    + r"""
local ttl, retention, limit, before = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local L = KEYS[7]
if redis.call('EXISTS', P) == 0 then return false end
local stop = -1
if before ~= '' then
  -- Bounded: the active path holds at most MAX_MESSAGES_PER_SESSION messages.
  local at = redis.call('LPOS', O, before)
  if not at then return {'gone'} end
  stop = at - 1
else
  stop = redis.call('LLEN', O) - 1
end
local start = limit > 0 and math.max(stop - limit + 1, 0) or 0
-- Only a reply still marked 'streaming' needs its stream (its text so far, or interrupting).
local live = redis.call('HGET', P, 'live')
local raw = live and redis.call('HGET', M, live)
if raw and cjson.decode(raw).status == 'streaming' then
  if live ~= reply_of(L) then return {'stale', live} end
  interrupt_if_orphaned(live, L, retention)
else
  live = nil
end
renew(ttl)
local out = {'', '', start > 0 and '1' or '0'}
if live then
  raw = redis.call('HGET', M, live)
  if raw and cjson.decode(raw).status == 'streaming' then
    out[1] = live
    out[2] = stream_text(L)
  end
end
if stop < 0 then return out end
-- The page and the message before it: each message's parent is the one before it.
local first = math.max(start - 1, 0)
local ids = redis.call('LRANGE', O, first, stop)
local skip = start - first
for i = 1 + skip, #ids, 500 do
  local last = math.min(i + 499, #ids)
  local fields = {}
  for j = i, last do fields[#fields + 1] = 'c:'..(j > 1 and ids[j - 1] or '') end
  local blobs = redis.call('HMGET', M, unpack(ids, i, last))
  local kids = redis.call('HMGET', K, unpack(fields))
  for j = i, last do
    local b, family = blobs[j - i + 1], kids[j - i + 1]
    if b then
      out[#out + 1] = b
      -- Most messages are an only child: no list to decode.
      if not family or not string.find(family, ',', 1, true) then
        out[#out + 1] = '1 1'
      else
        local list, index = cjson.decode(family), 1
        for n, id in ipairs(list) do if id == ids[j] then index = n end end
        out[#out + 1] = index..' '..#list
      end
    end
  end
end
return out
"""
)

SWITCH_ARGV = ("ttl", "mid", "sibling_index")

# KEYS: the session's FAMILY. ARGV: SWITCH_ARGV; sibling_index '' for `mid` itself, else the
# 1-based position among mid's siblings (mid's parent's children) of the message to show.
# The active path becomes the path from the first message to that one and, below it, the
# child last active at each step. Refused while a reply is being written.
# Returns {'ok'} | {'busy', reply_id} | {'gone'} (no such message) | {'bad', sibling_count}
# (no sibling at that position), or nil when the session does not exist.
SWITCH = (
    _COMMON
    + argv_locals(SWITCH_ARGV)
    + r"""
if redis.call('EXISTS', P) == 0 then return false end
local holder = redis.call('GET', G)
if holder then return {'busy', holder} end
plant_tree()
local raw = redis.call('HGET', M, mid)
if not raw then return {'gone'} end
local function parent_of(m)
  return (m.parent and m.parent ~= cjson.null) and m.parent or ''
end
local m = cjson.decode(raw)
if sibling_index ~= '' then
  local family = redis.call('HGET', K, 'c:'..parent_of(m))
  local kids = family and cjson.decode(family) or {mid}
  local chosen = kids[tonumber(sibling_index)]
  if not chosen then return {'bad', tostring(#kids)} end
  if chosen ~= mid then
    mid = chosen
    m = cjson.decode(redis.call('HGET', M, mid))
  end
end
-- Where the active path stays as it is: the nearest ancestor of mid on it.
local path = redis.call('LRANGE', O, 0, -1)
local on_path = {}
for i, id in ipairs(path) do on_path[id] = i end
-- Bounded by the session's messages, however the tree was stored.
local steps = redis.call('HLEN', M)
local up, child, keep = {}, mid, 0
while true do
  local parent = parent_of(m)
  redis.call('HSET', K, 'a:'..parent, child)
  up[#up + 1] = child
  if parent == '' then break end
  if on_path[parent] then keep = on_path[parent] break end
  steps = steps - 1
  local r = redis.call('HGET', M, parent)
  if not r or steps < 0 then break end
  child, m = parent, cjson.decode(r)
end
local tail = {}
for i = #up, 1, -1 do tail[#tail + 1] = up[i] end
local at = mid
while steps >= 0 do
  local below = redis.call('HGET', K, 'a:'..at)
  if not below then break end
  tail[#tail + 1] = below
  at, steps = below, steps - 1
end
if keep > 0 then redis.call('LTRIM', O, 0, keep - 1) else redis.call('DEL', O) end
for i = 1, #tail, 500 do redis.call('RPUSH', O, unpack(tail, i, math.min(i + 499, #tail))) end
renew(ttl)
return {'ok'}
"""
)

READ_META_ARGV = ("ttl", "token_hash", "owner_hash", "cookie_allowed")

# KEYS: the session's FAMILY. ARGV: READ_META_ARGV.
# Returns {'ok', the session's meta hash as a flat list...} | {'denied'} | {'csrf'}. Every
# request but a turn's start reads it first, so this is where a session's expiry is renewed,
# once the caller is authorized.
READ_META = (
    _COMMON
    + argv_locals(READ_META_ARGV)
    + r"""
local access = authorized(token_hash, owner_hash, cookie_allowed)
if access ~= 'ok' then return {access} end
renew(ttl)
local out = redis.call('HGETALL', P)
table.insert(out, 1, 'ok')
return out
"""
)

# KEYS: P. ARGV: ttl, then the meta hash's fields and values. A new session's hash, with its
# expiry in the same step: no moment without one.
CREATE = r"""
local ttl, fields = ARGV[1], {unpack(ARGV, 2)}
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('EXPIRE', KEYS[1], ttl)
"""

# KEYS: a browser's index (sorted set of session ids). ARGV: session id, score, ttl,
# max_sessions (0: none). Returns 1, or 0 when the index already holds max_sessions ids (some
# may be of sessions that expired: the caller drops those and tries again).
INDEX = r"""
local owned = KEYS[1]
local sid, score, ttl, most = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
if most > 0 and not redis.call('ZSCORE', owned, sid) and redis.call('ZCARD', owned) >= most then
  return 0
end
redis.call('ZADD', owned, score, sid)
redis.call('EXPIRE', owned, ttl)
return 1
"""

# KEYS: the session's FAMILY, then L and L:w (the stream of the reply P's `live` names, as the
# caller last knew it, and its readers' mark; none when it knew none). Deletes every key of
# the session, that stream included. Returns {'done', live} (live: the reply it names, absent
# when none) or {'stale', live} when L is not that reply's stream (nothing was deleted: call
# again with its stream as L).
DELETE = (
    _COMMON
    + r"""
local L, W = KEYS[7], KEYS[8]
local live = redis.call('HGET', P, 'live')
if live and live ~= reply_of(L) then return {'stale', live} end
redis.call('DEL', P, M, O, X, G, K)
if live then redis.call('DEL', L, W) end
return {'done', live}
"""
)

APPEND_ARGV = (
    "ttl",
    "messages",  # JSON list of [id, JSON naming its parent], parents before children
    "active",  # JSON list of the ids of the path to show, oldest first
)

# KEYS: the session's FAMILY. ARGV: APPEND_ARGV. Adds finished messages, a whole tree at once
# (an import, a copy of a shared chat), and makes `active` the path shown. A message already
# there is skipped, so a retried run adds nothing twice. Returns 0 when the session does not
# exist, else 1.
APPEND = (
    _COMMON
    + argv_locals(APPEND_ARGV)
    + r"""
if redis.call('EXISTS', P) == 0 then return 0 end
plant_tree()
for _, pair in ipairs(cjson.decode(messages)) do
  local id, raw = pair[1], pair[2]
  if redis.call('HSETNX', M, id, raw) == 1 then
    adopt(cjson.decode(raw).parent or '', id)
  end
end
local path = cjson.decode(active)
if #path > 0 then
  redis.call('DEL', O)
  local parent = ''
  for i = 1, #path, 500 do
    redis.call('RPUSH', O, unpack(path, i, math.min(i + 499, #path)))
  end
  for _, id in ipairs(path) do
    redis.call('HSET', K, 'a:'..parent, id)
    parent = id
  end
end
renew(ttl)
return 1
"""
)

# KEYS: P. ARGV: unless_named ('1': not when a person named the chat), then the meta hash's
# fields and values to set. Returns 1 when set; 0 when the session is gone (nothing is
# written: a key without its expiry would never go) or, with unless_named, was named by a
# person (a generated title loses to a rename made while it was being written).
UPDATE_META = r"""
local P = KEYS[1]
local unless_named, fields = ARGV[1], {unpack(ARGV, 2)}
if redis.call('EXISTS', P) == 0 then return 0 end
if unless_named == '1' and redis.call('HGET', P, 'named') == '1' then return 0 end
redis.call('HSET', P, unpack(fields))
return 1
"""
