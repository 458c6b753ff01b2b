"""Lua for search (conversation/search.py explains the word lists).

It reads session keys laid out as redis_scripts.py's docstring says (P, P:m, P:o), and
writes nothing.
"""

from __future__ import annotations

# KEYS: for each chat, in turn: P, P:m, P:o and its word list. ARGV: the query's words,
# case-folded. Returns a flat list of pairs: {chat's position (from 1), 'hit'} when its word
# list holds a word starting with each query word; {position, 'v'..version} when its word
# list is missing or outdated (rebuild it with that version, from data read after this);
# nothing for other chats, and for chats that no longer exist.
# The version: message count, last message id, that message's stored length, name.
SEARCH = r"""
local out = {}
for c = 1, #KEYS / 4 do
  local P, M, O, X = KEYS[4 * c - 3], KEYS[4 * c - 2], KEYS[4 * c - 1], KEYS[4 * c]
  local name = redis.call('HGET', P, 'name')
  if name then
    local last = redis.call('LINDEX', O, -1) or ''
    local size = last ~= '' and redis.call('HSTRLEN', M, last) or 0
    local version = redis.call('LLEN', O) .. ':' .. last .. ':' .. size .. ':' .. name
    local list = redis.call('GET', X)
    if not list or string.sub(list, 1, #version + 1) ~= version .. '\n' then
      out[#out + 1] = c
      out[#out + 1] = 'v' .. version
    else
      local all = true
      for _, word in ipairs(ARGV) do
        if not string.find(list, ' ' .. word, #version + 2, true) then
          all = false
          break
        end
      end
      if all then
        out[#out + 1] = c
        out[#out + 1] = 'hit'
      end
    end
  end
end
return out
"""
