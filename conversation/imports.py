"""Storing what an import file holds (import_formats) as the caller's own chats.

Idempotent, also when the same file is imported twice at the same moment: each chat's
source (its format and its id there) is recorded, digested, in the caller's import index
`<prefix>:imp:{<owner digest>}` (field: digest of the source, value: the session made of
it; expiring with the browser cookie), and a chat whose session still exists is skipped the
next time. While a chat is being stored its source is claimed, `<prefix>:imp:{<owner
digest>}:c:<digest of the source>` (SET NX, expiring after CLAIM_SECONDS, so a crashed
import frees it; the same hash tag as the index), holding the new session's id once it
exists: an import meeting the claim skips the chat, naming that session.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from conversation.import_formats import Candidate
from conversation.limits import LimitExceeded
from conversation.store import Store, digest

# Far longer than storing one chat takes (a few round trips): only a crashed import holds a
# claim that long, and its chat can be imported again once the claim expires.
CLAIM_SECONDS = 60
ALREADY = "already imported"
# Another request claimed the chat and has not made its session yet (a moment's window).
BEING_IMPORTED = "being imported by another request at this moment"


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


@dataclass(frozen=True, slots=True)
class Source:
    """One chat's import: the browser importing it (a digest) and the digest of the source,
    its field in that browser's import index and the name of its claim (Store.keys)."""

    owner: str
    field: str


async def imported_copy(store: Store, source: Source) -> str | None:
    """The session an earlier import made of this source, when it still exists."""
    return await store.imported_session(source.owner, source.field)


# Why a chat is not stored by this request, and the session that holds it when known.
Refusal = tuple[str, str | None]


async def claim(store: Store, source: Source) -> Refusal | None:
    """None: this request stores the chat (the claim is its own). Else why it does not: an
    import made it before, or another request is making it now (its session, when known)."""
    for _ in range(2):
        if before := await imported_copy(store, source):
            return ALREADY, before
        if await store.claim_import(source.owner, source.field, CLAIM_SECONDS):
            # The holder may have finished between the read above and the claim.
            if before := await imported_copy(store, source):
                await store.release_import_claim(source.owner, source.field)
                return ALREADY, before
            return None
        holder = await store.import_claim_holder(source.owner, source.field)
        if holder:
            return ALREADY, holder
        if holder == "":
            return BEING_IMPORTED, None
        # The claim went between the two reads: its holder finished; read the index again.
    return BEING_IMPORTED, None


async def import_chats(store: Store, owner: str, candidates: list[Candidate]) -> ImportResult:
    """Store each candidate as a new session of browser `owner` (a digest)."""
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
        source = Source(owner, digest(c.source))
        if refused := await claim(store, source):
            reason, held_by = refused
            skipped.append(
                Skipped(source=c.source, name=c.title, reason=reason, session_id=held_by)
            )
            continue
        try:
            done = await store_chat(store, owner, c, source)
        except LimitExceeded as exc:
            full = exc.message
            skipped.append(Skipped(source=c.source, name=c.title, reason=full))
            continue
        finally:
            await store.release_import_claim(source.owner, source.field)
        imported.append(done)
    return ImportResult(imported=imported, skipped=skipped)


async def store_chat(store: Store, owner: str, c: Candidate, source: Source) -> Imported:
    """The claimed chat as a new session, recorded in the import index."""
    meta, token = await store.create_session(
        c.title, c.system_prompt, owner, created_at=c.created_at
    )
    # Another import meeting the claim from now on names this session.
    await store.name_import_claim(source.owner, source.field, meta.session_id)
    await store.append_messages(meta.session_id, c.messages, c.active)
    await store.record_import(owner, source.field, meta.session_id, store.settings.cookie_max_age)
    return Imported(
        session_id=meta.session_id,
        token=token,
        name=c.title,
        source=c.source,
        messages=len(c.messages),
    )
