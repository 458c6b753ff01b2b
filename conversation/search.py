"""Search the caller's own chats by title and message text, on any Redis (7 has no query
engine; the same code serves Redis 8, whose FT.SEARCH is not used).

Each chat has a word list: `<prefix>:x:{<session id>}`, a string "<version>\\n <word> <word>
... " of the distinct words (Unicode word characters, case-folded) of its name and messages,
sorted. It expires like a session (SESSION_TTL after it was written) and goes with the chat.
The version is read from the chat itself (search_scripts.VERSION: its name, message count,
last message id and that message's stored length), which changes whenever anything that can
change does: a message is only ever added, or replaced as the last one. A query
(search_scripts.SEARCH, one round trip for all the caller's chats) finds the chats whose list
holds a word starting with each query word, and those whose list is missing or outdated; an
outdated list is rebuilt from the chat (its version read before its messages, so a change in
between only makes it outdated again) and the query runs again. Only the chats it named are
then read, newest first, to find the matching messages and cut their snippets, until enough
results are found or CANDIDATES_READ chats were read.

A query word matches the words it begins: "warm" finds "warmer"; every word of the query must
be in the one message (or the title) that is a result.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any, cast

from pydantic import BaseModel
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript

from conversation import search_scripts
from conversation.models import StoredMessage
from conversation.store import Store

WORD = re.compile(r"\w+")
# Longer "words" are not indexed: base64 blobs, hashes, runs of one letter.
LONGEST_WORD = 64
# Words a query may hold; more make it invalid, not slow.
MOST_QUERY_WORDS = 8
# Chats read to find matching messages, at most, per query: a word every chat holds must
# not make one query read them all.
CANDIDATES_READ = 50
# Word lists rebuilt side by side.
REBUILDS_AT_ONCE = 8
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


def word_list(version: str, name: str, messages: list[StoredMessage]) -> str:
    found = words(name)
    for m in messages:
        found |= words(m.content)
    return f"{version}\n {' '.join(sorted(found))} "


@dataclass(frozen=True, slots=True)
class Probe:
    """What SEARCH said of one chat: its version when its word list is outdated, else
    whether all query words are in its list."""

    session_id: str
    stale_version: str | None
    candidate: bool


class Search:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.redis = store.redis
        self.settings = store.settings
        self._search: AsyncScript = self.redis.register_script(search_scripts.SEARCH)

    def key(self, sid: str) -> str:
        return f"{self.store.keys.prefix}:x:{{{sid}}}"

    def _keys(self, sid: str) -> list[str]:
        session, messages, order = self.store.keys.family(sid)[:3]
        return [session, messages, order, self.key(sid)]

    async def _probe(self, sids: list[str], terms: list[str]) -> list[Probe]:
        """One SEARCH over every chat (a Redis Cluster: one per chat, side by side, since
        each chat has its own slot)."""
        if isinstance(self.redis, RedisCluster):
            parts = await asyncio.gather(*(self._probe_some([sid], terms) for sid in sids))
            return [probe for part in parts for probe in part]
        return await self._probe_some(sids, terms)

    async def _probe_some(self, sids: list[str], terms: list[str]) -> list[Probe]:
        keys = [key for sid in sids for key in self._keys(sid)]
        out = cast(list[Any], await self._search(keys=keys, args=terms))
        probes: list[Probe] = []
        for i in range(0, len(out), 2):
            sid = sids[int(out[i]) - 1]
            kind = out[i + 1]
            if kind == "hit":
                probes.append(Probe(sid, None, True))
            else:
                probes.append(Probe(sid, str(kind)[1:], False))
        return probes

    async def _rebuild(self, sid: str, version: str) -> None:
        page = await self.store.history(sid)
        if page is None:
            return
        name = version.split(":", 3)[3]
        text = word_list(version, name, page.messages)
        await self.redis.set(self.key(sid), text, ex=self.settings.session_ttl)

    async def _rebuild_all(self, stale: list[Probe]) -> None:
        """A few at a time: a browser's first search may find hundreds of chats to list,
        and must not take every pooled connection to Redis meanwhile."""
        for start in range(0, len(stale), REBUILDS_AT_ONCE):
            batch = stale[start : start + REBUILDS_AT_ONCE]
            await asyncio.gather(
                *(self._rebuild(p.session_id, cast(str, p.stale_version)) for p in batch)
            )

    async def forget(self, sid: str) -> None:
        await self.redis.delete(self.key(sid))

    async def search(self, sids: list[str], query: str, limit: int) -> SearchResults:
        """Results from the chats `sids` (the caller's, newest first) only."""
        terms = query_words(query)
        probes = await self._probe(sids, terms)
        stale = [p for p in probes if p.stale_version is not None]
        if stale:
            await self._rebuild_all(stale)
            again = await self._probe([p.session_id for p in stale], terms)
            found = {p.session_id for p in probes if p.candidate} | {
                p.session_id for p in again if p.candidate
            }
        else:
            found = {p.session_id for p in probes if p.candidate}
        candidates = [sid for sid in sids if sid in found]
        results: list[SearchResult] = []
        read = 0
        for sid in candidates:
            if len(results) >= limit or read >= CANDIDATES_READ:
                break
            read += 1
            results += await self._results_in(sid, terms, limit - len(results))
        return SearchResults(results=results, partial=read < len(candidates))

    async def _results_in(self, sid: str, terms: list[str], most: int) -> list[SearchResult]:
        page = await self.store.history(sid)
        name = cast(str | None, await self.redis.hget(self.store.keys.session(sid), "name"))
        if page is None or name is None:
            return []
        out: list[SearchResult] = []
        if matches(name, terms):
            out.append(
                SearchResult(
                    session_id=sid,
                    message_id=None,
                    title=name,
                    role=None,
                    snippet=snippet(name, terms),
                )
            )
        for m in page.messages:
            if len(out) >= most:
                break
            if matches(m.content, terms):
                out.append(
                    SearchResult(
                        session_id=sid,
                        message_id=m.id,
                        title=name,
                        role=m.role,
                        snippet=snippet(m.content, terms),
                    )
                )
        return out[:most]
