"""Share links: a read-only snapshot of a chat's shown path, readable by anyone with its id.

The id is 24 random bytes (192 bits, URL-safe base64) and the snapshot's key is named by it:
`<prefix>:share:<id>` (JSON, expiring when the link does). Knowing a key name grants nothing
in Redis, and the id is as hard to guess as a token. The chat's links are listed in
`<prefix>:shares:{<session id>}` (hash: id -> {created_at, expires_at}; the session's hash
tag, so it sits in the session's Cluster slot), which expires with the last of them; deleting
the chat deletes every snapshot it lists. Two steps each (snapshot, then list): a crash
between leaves at most a snapshot that expires on time, or a listed link that reads as gone.

The system prompt stays private: a snapshot holds the chat's name and its messages only.
"""

from __future__ import annotations

import json
import re
import secrets
from datetime import datetime, timedelta
from typing import cast

from pydantic import BaseModel

from conversation.expiring_hash import hset_expiring
from conversation.models import Message, StoredMessage
from conversation.store import SessionMeta, Store, utcnow

SHARE_ID = re.compile(r"[A-Za-z0-9_-]{32}")


class TooManyShares(Exception):
    """The chat already has MAX_SHARES_PER_SESSION live links."""


class ShareLink(BaseModel):
    share_id: str
    path: str  # the page that shows it: /s/<id>
    created_at: datetime
    expires_at: datetime


class SharedChat(BaseModel):
    share_id: str
    name: str
    created_at: datetime  # when the snapshot was taken
    expires_at: datetime
    messages: list[Message]


def link(share_id: str, created_at: datetime, expires_at: datetime) -> ShareLink:
    return ShareLink(
        share_id=share_id, path=f"/s/{share_id}", created_at=created_at, expires_at=expires_at
    )


def snapshot_message(m: StoredMessage) -> Message:
    """A reply still being written is shown as the text it had, stopped."""
    public = m.public()
    if public.status == "streaming":
        public.status = "interrupted"
    return public


class Shares:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.redis = store.redis
        self.settings = store.settings
        self.prefix = store.keys.prefix

    def key(self, share_id: str) -> str:
        return f"{self.prefix}:share:{share_id}"

    def index(self, sid: str) -> str:
        return f"{self.prefix}:shares:{{{sid}}}"

    async def _live(self, sid: str) -> dict[str, ShareLink]:
        """The chat's links that have not expired; expired ones are dropped from its list."""
        raw = cast(dict[str, str], await self.redis.hgetall(self.index(sid)))
        now = utcnow()
        live: dict[str, ShareLink] = {}
        for share_id, value in raw.items():
            times = json.loads(value)
            found = link(share_id, times["created_at"], times["expires_at"])
            if found.expires_at > now:
                live[share_id] = found
        if dead := [share_id for share_id in raw if share_id not in live]:
            await self.redis.hdel(self.index(sid), *dead)
        return live

    async def create(self, meta: SessionMeta, expires_in: int | None) -> ShareLink | None:
        """A link to the chat's shown path as it is now; None when the chat is gone."""
        sid = meta.session_id
        live = await self._live(sid)
        if len(live) >= self.settings.max_shares_per_session:
            raise TooManyShares
        page = await self.store.history(sid)
        if page is None:
            return None
        ttl = min(expires_in or self.settings.share_max_ttl, self.settings.share_max_ttl)
        now = utcnow()
        new = link(secrets.token_urlsafe(24), now, now + timedelta(seconds=ttl))
        snapshot = SharedChat(
            share_id=new.share_id,
            name=meta.name,
            created_at=new.created_at,
            expires_at=new.expires_at,
            messages=[snapshot_message(m) for m in page.messages],
        )
        await self.redis.set(self.key(new.share_id), snapshot.model_dump_json(), ex=ttl)
        times = new.model_dump_json(include={"created_at", "expires_at"})
        last = max([new.expires_at, *(s.expires_at for s in live.values())])
        ttl_left = int((last - now).total_seconds()) + 1
        await hset_expiring(self.redis, self.index(sid), new.share_id, times, ttl_left)
        return new

    async def list(self, sid: str) -> list[ShareLink]:
        """The chat's live links, newest first."""
        live = await self._live(sid)
        return sorted(live.values(), key=lambda s: s.created_at, reverse=True)

    async def revoke(self, sid: str, share_id: str) -> bool:
        """False when the chat has no such live link."""
        if not SHARE_ID.fullmatch(share_id) or not await self.redis.hdel(self.index(sid), share_id):
            return False
        return bool(await self.redis.delete(self.key(share_id)))

    async def revoke_all(self, sid: str) -> None:
        ids = cast(dict[str, str], await self.redis.hgetall(self.index(sid)))
        if ids:
            await self.redis.delete(*(self.key(share_id) for share_id in ids))
        await self.redis.delete(self.index(sid))

    async def read(self, share_id: str) -> SharedChat | None:
        """The snapshot; None for an id that is unknown, revoked or expired alike."""
        if not SHARE_ID.fullmatch(share_id):
            return None
        raw = cast(str | None, await self.redis.get(self.key(share_id)))
        return None if raw is None else SharedChat.model_validate_json(raw)
