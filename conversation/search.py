"""Search the caller's own chats by title and message text, on any Redis (7 has no query
engine; the same code serves Redis 8, whose FT.SEARCH is not used).

An inverted index per owner (a browser; a chat without one is its own owner), all under
`<prefix>:x:{<owner>}` (one hash tag: one Redis Cluster slot), in a fixed set of keys so that
every script is given each key it touches (search_scripts.INDEX_FAMILY): `:w` word -> the
numbers of the chats holding it, `:d` the owner's words (sorted, read by prefix), `:t` number
-> that chat's words (so a rebuild changes only the difference), `:c` chat id -> its entry
(number, layout, indexed at, busy, version), `:n` number -> chat id. Words are runs of
Unicode word characters, case-folded, from the chat's name and the messages of every branch.
Every key expires COOKIE_MAX_AGE after its last write, as the browser's list of chats does.

Nothing is indexed when a chat is written (the turn's scripts stay as they are): a query
first checks the caller's chats (search_scripts.CHECK, one round trip for all of them, which
compares only the chats touched since they were indexed), rebuilds the few that changed
from the chat itself (search_scripts.READ then INDEX), then asks the index which chats hold
a word beginning with each query word (QUERY). On one server (not a Cluster) the check and
the question are one script for a browser's chats (SEARCH_ONE_SERVER), after reading the
browser's list of chats to name their keys. Only the chats found are then read, newest
first, to find the matching messages and cut their snippets (CANDIDATES), until enough
results are found or CANDIDATES_READ chats were read. Deleting a chat takes it out of the
index.

A query word matches the words it begins: "warm" finds "warmer"; every word of the query must
be in the one message (or the title) that is a result.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from typing import Any, cast

import orjson
from pydantic import BaseModel
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript

from conversation import search_scripts
from conversation.store import SessionMeta, Store

WORD = re.compile(r"\w+")
# Longer "words" are not indexed: base64 blobs, hashes, runs of one letter.
LONGEST_WORD = 64
# Words a query may hold; more make it invalid, not slow.
MOST_QUERY_WORDS = 8
# Chats read to find matching messages, at most, per query: a word every chat holds must
# not make one query read them all.
CANDIDATES_READ = 50
# ASCII that case folding makes of other letters (ß -> ss, ligatures -> ff, fi, fl, st):
# a query word holding them may match text that does not hold them as such, so the
# CANDIDATES script, which only lowers ASCII, must not filter on it.
FOLDED_FROM_OTHERS = re.compile("ss|ff|fi|fl|st")
# Chats indexed side by side, and chats read at once (one script) for snippets.
REBUILDS_AT_ONCE = 8
READS_AT_ONCE = 20
# Index words one query word may stand for ("a" begins thousands): past it, the result is
# marked partial.
WORDS_PER_QUERY_WORD = 200
# A chat rebuilt by a query that the next must compare again (touched within the check's two
# seconds of slack before it was indexed, or being written) is given with all its keys by
# the next queries of its owner for this long: given its P alone, it would be rebuilt.
REBUILT_LATELY_S = 3.0
# Owners whose chats rebuilt lately are remembered (the oldest are forgotten past it).
OWNERS_REMEMBERED = 1024
# Characters of context around the first match in a snippet.
BEFORE, AFTER = 60, 140


class NothingToSearch(Exception):
    """The query holds no word characters, or more than MOST_QUERY_WORDS words."""


class Segment(BaseModel):
    text: str
    hit: bool  # a query word matched here: show it highlighted


class SearchResult(BaseModel):
    session_id: str
    message_id: str | None  # None: the chat's title matched
    title: str
    role: str | None
    snippet: list[Segment]


class SearchResults(BaseModel):
    results: list[SearchResult]
    partial: bool  # more chats might match than were read: refine the query


def words(text: str) -> set[str]:
    return {w for w in WORD.findall(text.casefold()) if len(w) <= LONGEST_WORD}


def query_words(query: str) -> list[str]:
    found = sorted(words(query))
    if not found or len(found) > MOST_QUERY_WORDS:
        raise NothingToSearch
    return found


def matches(text: str, terms: list[str]) -> bool:
    have = words(text)
    return all(any(w.startswith(t) for w in have) for t in terms)


def snippet(text: str, terms: list[str]) -> list[Segment]:
    """The text around the first match, cut at word boundaries, with every matching word
    marked; offsets come from the text itself, so case folding cannot shift them."""
    hits = [
        (m.start(), m.end())
        for m in WORD.finditer(text)
        if any(m.group().casefold().startswith(t) for t in terms)
    ]
    first = hits[0][0] if hits else 0
    start = max(first - BEFORE, 0)
    end = min(first + AFTER, len(text))
    if start > 0 and (space := text.find(" ", start, first)) != -1:
        start = space + 1
    if end < len(text) and (space := text.rfind(" ", first, end)) > first:
        end = space
    segments: list[Segment] = []
    if start > 0:
        segments.append(Segment(text="…", hit=False))
    at = start
    for lo, hi in hits:
        if lo < start or hi > end:
            continue
        if lo > at:
            segments.append(Segment(text=text[at:lo], hit=False))
        segments.append(Segment(text=text[lo:hi], hit=True))
        at = hi
    if at < end:
        segments.append(Segment(text=text[at:end], hit=False))
    if end < len(text):
        segments.append(Segment(text="…", hit=False))
    return segments


@dataclass(frozen=True, slots=True)
class Scope:
    """Chats the caller may search, with the owner whose index holds them: `session_ids`
    (newest first), or, for `browser`, the owner's own list of chats."""

    owner: str
    session_ids: list[str]
    browser: bool = False


def owner_of(meta: SessionMeta) -> str:
    """Whose index holds a chat: its browser's, or its own for a chat without one."""
    return meta.owner or f"s{meta.session_id}"


class Search:
    def __init__(self, store: Store, one_round_trip: bool | None = None) -> None:
        self.store = store
        self.redis = store.redis
        self.settings = store.settings
        # One script for a browser's whole query needs one server: a Cluster spreads the
        # chats over slots (None: decide by the client).
        self.one_round_trip = (
            not isinstance(self.redis, RedisCluster) if one_round_trip is None else one_round_trip
        )
        self._check: AsyncScript = self.redis.register_script(search_scripts.CHECK)
        self._read: AsyncScript = self.redis.register_script(search_scripts.READ)
        self._index: AsyncScript = self.redis.register_script(search_scripts.INDEX)
        self._forget: AsyncScript = self.redis.register_script(search_scripts.FORGET)
        self._query: AsyncScript = self.redis.register_script(search_scripts.QUERY)
        self._candidates: AsyncScript = self.redis.register_script(search_scripts.CANDIDATES)
        self._one_server: AsyncScript = self.redis.register_script(search_scripts.SEARCH_ONE_SERVER)
        # owner -> chat id -> when (monotonic) a query of this replica rebuilt it.
        self._rebuilt: dict[str, dict[str, float]] = {}

    def prefix(self, owner: str) -> str:
        return f"{self.store.keys.prefix}:x:{{{owner}}}"

    def _owner_keys(self, owner: str) -> list[str]:
        """The owner's index, as every index script takes it."""
        p = self.prefix(owner)
        return [p + suffix for suffix in search_scripts.INDEX_FAMILY]

    def _chat_keys(self, sids: list[str]) -> list[str]:
        """The chats' keys, as the scripts reading chats take them, four a chat."""
        sessions = map(self.store.keys.session, sids)
        return [p + suffix for p in sessions for suffix in search_scripts.CHAT]

    async def search(self, scopes: list[Scope], query: str, limit: int) -> SearchResults:
        """Results from the scopes' chats only, newest chat first."""
        terms = query_words(query)
        matching: list[str] = []
        cut = False
        for scope in scopes:
            if scope.browser and self.one_round_trip:
                found, cut_here = await self._search_browser(scope.owner, terms)
            else:
                found, cut_here = await self._search_scope(scope, terms)
            matching += found
            cut = cut or cut_here
        ordered = dict.fromkeys(matching)
        candidates = list(ordered)[:CANDIDATES_READ]
        results: list[SearchResult] = []
        for start in range(0, len(candidates), READS_AT_ONCE):
            results += await self._results_in(candidates[start : start + READS_AT_ONCE], terms)
            if len(results) >= limit:
                break
        partial = cut or len(ordered) > len(candidates)
        return SearchResults(results=results[:limit], partial=partial)

    async def _search_browser(self, owner: str, terms: list[str]) -> tuple[list[str], bool]:
        """A browser's chats on one server: two round trips when its index is up to date
        (its list of chats, then one script given their keys). The script gets each chat's
        P, which tells whether the chat was touched since it was indexed, and all its keys
        only for the chats rebuilt lately, so a query does not carry four keys a chat."""
        before, _, after = self.store.keys.session("\0").partition("\0")
        ttl_ms = self.settings.session_ttl * 1000
        since = time.monotonic() - REBUILT_LATELY_S
        rebuilt = {sid: at for sid, at in self._rebuilt.pop(owner, {}).items() if at > since}
        try:
            for _ in range(3):
                sids = await self.store.owned_ids(owner)
                chats = [
                    self._chat_keys([sid]) if sid in rebuilt else [self.store.keys.session(sid)]
                    for sid in sids
                ]
                keys = [*self._owner_keys(owner), *(key for chat in chats for key in chat)]
                sizes = "".join(str(len(chat)) for chat in chats)
                args: list[str | int] = [ttl_ms, WORDS_PER_QUERY_WORD, before, after, sizes]
                out = cast(list[Any], await self._one_server(keys=keys, args=[*args, *terms]))
                if out[0] == "ok":
                    return [sids[int(c) - 1] for c in out[2:]], out[1] == "1"
                pairs = zip(out[1::2], out[2::2], strict=True)
                work = [(sids[int(c) - 1], str(what)) for c, what in pairs]
                again = await self._work(owner, work)
                rebuilt |= dict.fromkeys(again, time.monotonic())
        finally:
            if rebuilt:
                self._rebuilt[owner] = rebuilt
                if len(self._rebuilt) > OWNERS_REMEMBERED:
                    del self._rebuilt[next(iter(self._rebuilt))]
        # Chats that keep changing (replies being written as we index): search what is there.
        return await self._search_scope(Scope(owner, await self.store.owned_ids(owner)), terms)

    async def _search_scope(self, scope: Scope, terms: list[str]) -> tuple[list[str], bool]:
        """Any Redis, a Cluster too: bring the index up to date, then ask it."""
        sids = scope.session_ids
        if scope.browser:
            sids = await self.store.owned_ids(scope.owner)
        await self._refresh(Scope(scope.owner, sids))
        keys = self._owner_keys(scope.owner)
        args: list[str | int] = [WORDS_PER_QUERY_WORD, *terms]
        out = cast(list[str], await self._query(keys=keys, args=args))
        found = set(out[1:])
        return [sid for sid in sids if sid in found], out[0] == "1"

    async def _refresh(self, scope: Scope) -> None:
        """Bring the index up to date with the scope's chats: rebuild what changed, take
        out what is gone."""
        sids = scope.session_ids
        if not sids:
            return
        held = cast(
            list[str | None], await self.redis.hmget(self._owner_keys(scope.owner)[0], sids)
        )
        states = [h or "" for h in held]
        ttl_ms = self.settings.session_ttl * 1000
        if isinstance(self.redis, RedisCluster):
            # Each chat has its own slot: one CHECK per chat, side by side.
            parts = await asyncio.gather(
                *(
                    self._check(keys=self._chat_keys([sid]), args=[ttl_ms, state])
                    for sid, state in zip(sids, states, strict=True)
                )
            )
            out: list[Any] = []
            for i, part in enumerate(parts):
                for j in range(0, len(part), 2):
                    out += [i + 1, part[j + 1]]
        else:
            keys = self._chat_keys(sids)
            out = cast(list[Any], await self._check(keys=keys, args=[ttl_ms, *states]))
        work = [(sids[int(out[i]) - 1], str(out[i + 1])) for i in range(0, len(out), 2)]
        await self._work(scope.owner, work)

    async def _work(self, owner: str, work: list[tuple[str, str]]) -> list[str]:
        """Rebuild the stale chats, take out the gone ones, a few at a time. Returns the
        chats rebuilt that the next query must compare again (search_scripts.READ)."""
        again: list[str] = []
        for start in range(0, len(work), REBUILDS_AT_ONCE):
            batch = work[start : start + REBUILDS_AT_ONCE]
            done = await asyncio.gather(*(self._update(owner, sid, what) for sid, what in batch))
            again += [sid for (sid, _), compare in zip(batch, done, strict=True) if compare]
        return again

    async def _update(self, owner: str, sid: str, what: str) -> bool:
        """Whether the chat, rebuilt, must be compared again by the next query."""
        if what == "gone":
            await self._forget(keys=self._owner_keys(owner), args=[sid])
            return False
        ttl_ms = self.settings.session_ttl * 1000
        out = cast(list[str] | None, await self._read(keys=self._chat_keys([sid]), args=[ttl_ms]))
        if out is None:
            return False
        busy, version, name, again = out[0], out[1], out[2], out[3]
        found = words(name)
        for raw in out[4:]:
            found |= words(orjson.loads(raw).get("content", ""))
        ttl = self.settings.cookie_max_age
        args: list[str | int] = [sid, busy, version, ttl, *sorted(found)]
        await self._index(keys=self._owner_keys(owner), args=args)
        return again == "1"

    async def add(self, owner: str, sids: list[str]) -> None:
        """Index chats just written in bulk (an import), so the next search need not."""
        await self._work(owner, [(sid, "stale") for sid in sids])

    async def forget(self, meta: SessionMeta) -> None:
        """Take a chat out of its owner's index (it is being deleted)."""
        owner = owner_of(meta)
        await self._forget(keys=self._owner_keys(owner), args=[meta.session_id])

    async def _results_in(self, sids: list[str], terms: list[str]) -> list[SearchResult]:
        """The chats' matching titles and messages, in the order of `sids`. Read as the
        index reads, not as a person does: the chats' expiry is not renewed (CHECK would
        otherwise compare every chat a search showed, at every query)."""
        ascii_terms = [t for t in terms if t.isascii() and not FOLDED_FROM_OTHERS.search(t)]
        if isinstance(self.redis, RedisCluster):
            parts = await asyncio.gather(
                *(self._candidates(keys=self._chat_keys([sid]), args=ascii_terms) for sid in sids)
            )
            chats = [part[0] for part in parts]
        else:
            keys = self._chat_keys(sids)
            chats = cast(list[list[str]], await self._candidates(keys=keys, args=ascii_terms))
        found: list[SearchResult] = []
        for sid, chat in zip(sids, chats, strict=True):
            if not chat:
                continue
            name = chat[0]
            if matches(name, terms):
                found.append(
                    SearchResult(
                        session_id=sid,
                        message_id=None,
                        title=name,
                        role=None,
                        snippet=snippet(name, terms),
                    )
                )
            # Every branch's messages, in the order they were written (ids break ties, so
            # the order does not depend on how Redis lists a hash).
            by_time = sorted(map(orjson.loads, chat[1:]), key=lambda m: (m["created_at"], m["id"]))
            for m in by_time:
                content = m.get("content", "")
                if matches(content, terms):
                    found.append(
                        SearchResult(
                            session_id=sid,
                            message_id=m["id"],
                            title=name,
                            role=m["role"],
                            snippet=snippet(content, terms),
                        )
                    )
        return found
