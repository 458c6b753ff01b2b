"""Storing what an import file holds (import_formats) as the caller's own chats.

Idempotent: each chat's source (its format and its id there) is recorded, digested, in the
caller's import index `<prefix>:imp:{<owner digest>}` (field: digest of the source, value:
the session made of it; expiring with the browser cookie). A chat whose session still exists
is skipped the next time. Two imports of one file at the same moment may both store it: the
index is read before and written after each chat, not reserved.
"""

from __future__ import annotations

from typing import cast

from pydantic import BaseModel

from conversation.expiring_hash import hset_expiring
from conversation.import_formats import Candidate
from conversation.limits import LimitExceeded
from conversation.store import Store, digest


class Imported(BaseModel):
    session_id: str
    token: str  # as POST /api/sessions gives one: for clients without the cookie
    name: str
    source: str
    messages: int


class Skipped(BaseModel):
    source: str
    name: str
    reason: str
    session_id: str | None = None  # the chat imported before, for "already imported"


class ImportResult(BaseModel):
    imported: list[Imported]
    skipped: list[Skipped]


def import_index(store: Store, owner: str) -> str:
    return f"{store.keys.prefix}:imp:{{{owner}}}"


async def import_chats(store: Store, owner: str, candidates: list[Candidate]) -> ImportResult:
    """Store each candidate as a new session of browser `owner` (a digest)."""
    index = import_index(store, owner)
    imported: list[Imported] = []
    skipped: list[Skipped] = []
    full: str | None = None
    for c in candidates:
        if c.problem is not None:
            skipped.append(Skipped(source=c.source, name=c.title, reason=c.problem))
            continue
        if full is not None:
            skipped.append(Skipped(source=c.source, name=c.title, reason=full))
            continue
        source_key = digest(c.source)
        before = cast(str | None, await store.redis.hget(index, source_key))
        if before and await store.redis.exists(store.keys.session(before)):
            skipped.append(
                Skipped(source=c.source, name=c.title, reason="already imported", session_id=before)
            )
            continue
        try:
            meta, token = await store.create_session(
                c.title, c.system_prompt, owner, created_at=c.created_at
            )
        except LimitExceeded as exc:
            full = exc.message
            skipped.append(Skipped(source=c.source, name=c.title, reason=full))
            continue
        await store.append_messages(meta.session_id, c.messages, c.active)
        ttl = store.settings.cookie_max_age
        await hset_expiring(store.redis, index, source_key, meta.session_id, ttl)
        imported.append(
            Imported(
                session_id=meta.session_id,
                token=token,
                name=c.title,
                source=c.source,
                messages=len(c.messages),
            )
        )
    return ImportResult(imported=imported, skipped=skipped)
