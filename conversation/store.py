"""Sessions, messages and reply streams in Redis.

Every public method is at most one round trip (a pipeline or a script), so a chat turn costs
three outside streaming: read the session, start the turn, finish the reply.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from conversation import scripts
from conversation.config import Settings
from conversation.limits import too_many_sessions
from conversation.models import ErrorInfo, Status, StoredMessage

StreamEntry = tuple[str, dict[str, str]]
ScriptArg = str | int | float


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return secrets.token_hex(8)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class SessionMeta:
    session_id: str
    name: str
    created_at: datetime
    token_hash: str
    owner: str
    system_prompt: str


@dataclass(frozen=True, slots=True)
class Claim:
    """A claim to a session: the digests of the credentials a request presented, unchecked.

    Redis checks them in the script that reads or changes the session (scripts.authorized),
    so an authorized read or turn start is one round trip. Digests only: the token and the
    browser id never leave this process.
    """

    session_id: str
    token_hash: str = ""  # digest of the Bearer token presented, or ""
    owner_hash: str = ""  # digest of the browser cookie presented, or ""
    cookie_allowed: bool = False  # the request passed the CSRF guard: the cookie may count

    @classmethod
    def for_token(cls, session_id: str, token: str) -> Claim:
        """The claim of a Bearer token alone (no browser cookie)."""
        return cls(session_id, token_hash=digest(token))

    def script_args(self) -> list[ScriptArg]:
        return [self.token_hash, self.owner_hash, "1" if self.cookie_allowed else "0"]


# Why a claim was refused: no match or no such session (one answer, so that neither is
# revealed), or only the cookie matched on a request that failed the CSRF guard.
ClaimRefusal = Literal["denied", "csrf"]


@dataclass(frozen=True, slots=True)
class TurnStarted:
    user: StoredMessage
    context: list[StoredMessage]  # oldest first, ending with the user message
    system_prompt: str


@dataclass(frozen=True, slots=True)
class TurnDuplicate:
    user: StoredMessage
    reply: StoredMessage | None


@dataclass(frozen=True, slots=True)
class TurnRefused:
    reason: Literal["busy", "empty", "not_last", "full"] | ClaimRefusal
    holder: str = ""


TurnOutcome = TurnStarted | TurnDuplicate | TurnRefused
TurnMode = Literal["message", "regenerate", "edit"]


def _message(raw: str) -> StoredMessage:
    return StoredMessage.model_validate_json(raw)


class Store:
    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self._prefix = settings.key_prefix
        self.cancel_channel = f"{self._prefix}:cancel"
        # A reply stream never outlives its session.
        self._retention = min(settings.stream_retention, settings.session_ttl)
        self._create: AsyncScript = redis.register_script(scripts.CREATE_SESSION)
        self._begin: AsyncScript = redis.register_script(scripts.BEGIN_TURN)
        self._flush: AsyncScript = redis.register_script(scripts.FLUSH)
        self._finish: AsyncScript = redis.register_script(scripts.FINISH)
        self._check_live: AsyncScript = redis.register_script(scripts.CHECK_LIVE)
        self._read_history: AsyncScript = redis.register_script(scripts.READ_HISTORY)
        self._read_meta: AsyncScript = redis.register_script(scripts.READ_META)

    # Key names -----------------------------------------------------------------------

    def session_key(self, sid: str) -> str:
        return f"{self._prefix}:s:{sid}"

    def stream_key(self, mid: str) -> str:
        # Not under the session's key: every stream write names it (the scripts derive it
        # from the session's key the same way).
        return f"{self._prefix}:r:{mid}"

    def token_key(self, token_hash: str) -> str:
        return f"{self._prefix}:t:{token_hash}"

    def owner_key(self, owner: str) -> str:
        return f"{self._prefix}:b:{owner}"

    def expires_at(self) -> datetime:
        """Every request renews the session, so it expires SESSION_TTL from now."""
        return utcnow() + timedelta(seconds=self.settings.session_ttl)

    # Sessions ------------------------------------------------------------------------

    async def create_session(
        self, name: str, system_prompt: str, owner: str
    ) -> tuple[SessionMeta, str]:
        token = secrets.token_urlsafe(32)
        meta = SessionMeta(
            session_id=secrets.token_hex(16),
            name=name,
            created_at=utcnow(),
            token_hash=digest(token),
            owner=owner,
            system_prompt=system_prompt,
        )
        key, ttl = self.session_key(meta.session_id), self.settings.session_ttl
        tk = self.token_key(meta.token_hash)
        fields: dict[str, ScriptArg] = {
            "name": meta.name,
            "created_at": meta.created_at.isoformat(),
            "th": meta.token_hash,
            "tk": tk,
            "owner": owner,
            "system": system_prompt,
        }
        most = self.settings.max_sessions_per_browser
        owned = self.owner_key(owner) if owner else ""
        args: list[ScriptArg] = [key, tk, owned, ttl, self.settings.cookie_max_age]
        args += [meta.session_id, meta.created_at.timestamp(), most]
        for field_and_value in fields.items():
            args += field_and_value
        if not await self._create(args=args):
            raise too_many_sessions(most)
        return meta, token

    async def get_meta(self, claim: Claim) -> SessionMeta | ClaimRefusal:
        """The session's settings if `claim` grants it; renews its expiry then, as every
        authorized request does."""
        sid = claim.session_id
        args = [self.session_key(sid), self.settings.session_ttl, *claim.script_args()]
        out = cast(list[str], await self._read_meta(args=args))
        if out[0] != "ok":
            return cast(ClaimRefusal, out[0])
        flat = out[1:]
        return self._meta(sid, dict(zip(flat[::2], flat[1::2], strict=True)))

    @staticmethod
    def _meta(sid: str, raw: dict[str, str]) -> SessionMeta:
        return SessionMeta(
            session_id=sid,
            name=raw.get("name", ""),
            created_at=datetime.fromisoformat(raw["created_at"]),
            token_hash=raw["th"],
            owner=raw.get("owner", ""),
            system_prompt=raw.get("system", ""),
        )

    async def session_for_token(self, token: str) -> SessionMeta | None:
        """The session a token belongs to (the tutorials' API names sessions by token)."""
        sid = cast(str | None, await self.redis.get(self.token_key(digest(token))))
        if sid is None:
            return None
        meta = await self.get_meta(Claim.for_token(sid, token))
        return meta if isinstance(meta, SessionMeta) else None

    async def rename(self, sid: str, name: str) -> None:
        key, ttl = self.session_key(sid), self.settings.session_ttl
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, "name", name)
            for k in self._session_keys(sid):
                pipe.expire(k, ttl)
            await pipe.execute()

    def _session_keys(self, sid: str) -> list[str]:
        key = self.session_key(sid)
        return [key, f"{key}:m", f"{key}:o", f"{key}:x"]

    async def delete(self, meta: SessionMeta) -> None:
        sid = meta.session_id
        key = self.session_key(sid)
        live = cast(str | None, await self.redis.hget(key, "live"))
        keys = [*self._session_keys(sid), f"{key}:g", self.token_key(meta.token_hash)]
        if live:
            keys += [self.stream_key(live), f"{self.stream_key(live)}:w"]
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(*keys)
            if meta.owner:
                pipe.zrem(self.owner_key(meta.owner), sid)
            await pipe.execute()

    async def owned_sessions(self, owner: str, limit: int = 200) -> list[tuple[SessionMeta, int]]:
        """A browser's sessions, newest first, each with its seconds to live."""
        owned = self.owner_key(owner)
        sids = cast(list[str], await self.redis.zrevrange(owned, 0, limit - 1))
        if not sids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for sid in sids:
                pipe.hgetall(self.session_key(sid))
                pipe.ttl(self.session_key(sid))
            replies = await pipe.execute()
        found: list[tuple[SessionMeta, int]] = []
        expired: list[str] = []
        for i, sid in enumerate(sids):
            meta = self._meta(sid, replies[2 * i])
            if meta is None:
                expired.append(sid)
            else:
                found.append((meta, max(int(replies[2 * i + 1]), 0)))
        if expired:
            await self.redis.zrem(owned, *expired)
        return found

    async def history(self, sid: str, limit: int = 0) -> list[StoredMessage] | None:
        """The session's messages in order (the newest `limit` if set); renews the session.

        A reply still being written shows the text stored so far.
        """
        s = self.settings
        args: list[ScriptArg] = [self.session_key(sid), s.session_ttl, self._retention, limit]
        out = cast(list[str] | None, await self._read_history(args=args))
        if out is None:
            return None
        live_id, live_text = out[0], out[1]
        messages = [_message(raw) for raw in out[2:]]
        for m in messages:
            if m.id == live_id:
                m.content = live_text
        return messages

    # Turns ---------------------------------------------------------------------------

    async def begin_turn(
        self,
        claim: Claim,
        mode: TurnMode,
        user: StoredMessage,
        reply: StoredMessage,
        client_message_id: str | None,
        token_budget: int,
    ) -> TurnOutcome:
        s = self.settings
        args: list[ScriptArg] = [
            self.session_key(claim.session_id),
            s.session_ttl,
            int(s.generation_lease * 1000),
            self._retention,
            mode,
            client_message_id or "",
            user.id,
            user.model_dump_json(exclude_none=True),
            reply.id,
            reply.model_dump_json(exclude_none=True),
            token_budget,
            user.id,
            user.content,
            s.context_max_messages,
            *claim.script_args(),
            s.max_messages_per_session,
        ]
        out = cast(list[str], await self._begin(args=args))
        kind = out[0]
        if kind == "ok":
            context = [_message(raw) for raw in reversed(out[3:])]
            return TurnStarted(user=_message(out[2]), context=context, system_prompt=out[1])
        if kind == "dup":
            return TurnDuplicate(user=_message(out[1]), reply=_message(out[2]) if out[2] else None)
        if kind == "busy":
            return TurnRefused(reason="busy", holder=out[1])
        if kind == "full":
            return TurnRefused(reason="full")
        if kind in ("denied", "csrf"):
            return TurnRefused(reason=cast(ClaimRefusal, kind))
        if kind == "bad" and out[1] in ("empty", "not_last"):
            return TurnRefused(reason=cast(Literal["empty", "not_last"], out[1]))
        raise RuntimeError(f"unexpected begin-turn reply {kind!r}")

    async def flush(
        self, sid: str, mid: str, end: int, text: str, expire: bool = True, renew: bool = True
    ) -> bool:
        """Append text ending at offset `end` to the reply's stream. `expire`: (re)set the
        stream's retention (always with its first entry); `renew`: renew the generation's
        lease. Both only when due: each argument is paid for in every write. True when a
        reader elsewhere is tailing the stream."""
        args: list[ScriptArg] = [self.stream_key(mid), end, text]
        if expire or renew:
            args.append(self._retention if expire else "")
        if renew:
            args += [self.session_key(sid), int(self.settings.generation_lease * 1000)]
        return bool(await self._flush(args=args))

    async def finish(self, sid: str, reply: StoredMessage, flushed: int) -> None:
        """Store the finished reply, end its stream and release the session's generation."""
        end = len(reply.content)
        kind = reply.status
        args: list[ScriptArg] = [
            self.session_key(sid),
            reply.id,
            reply.model_dump_json(exclude_none=True),
            kind,
            f"{end}-0",
            reply.content[flushed:],
            f"{end}-1",
            self._retention,
        ]
        await self._finish(args=args)

    async def get_message(self, sid: str, mid: str) -> StoredMessage | None:
        raw = cast(str | None, await self.redis.hget(f"{self.session_key(sid)}:m", mid))
        return None if raw is None else _message(raw)

    async def check_live(self, sid: str, mid: str) -> StoredMessage | None:
        """The message; a reply whose writer died is marked interrupted first."""
        args: list[ScriptArg] = [self.session_key(sid), mid, self._retention]
        raw = cast(str | None, await self._check_live(args=args))
        return None if raw is None else _message(raw)

    async def read_stream(self, sid: str, mid: str, after: str, block_ms: int) -> list[StreamEntry]:
        """New entries after `after`, waiting up to `block_ms`; tells the writer someone is
        tailing (it then writes every STREAM_FLUSH_MS instead of STREAM_UNWATCHED_FLUSH_MS)."""
        key = self.stream_key(mid)
        async with self.redis.pipeline(transaction=False) as pipe:
            # Outlives the wait below with room to spare; gone soon after the reader leaves.
            pipe.set(f"{key}:w", 1, px=2 * block_ms + 1000)
            pipe.xread({key: after}, count=1000, block=block_ms)
            reply: Any = (await pipe.execute())[1]
        if not reply:
            return []
        # RESP2 gives [[key, entries]], RESP3 {key: [entries]}.
        streams = reply.values() if isinstance(reply, dict) else [e for _, e in reply]
        return [(str(eid), dict(fields)) for entries in streams for eid, fields in entries]

    async def publish_cancel(self, sid: str, mid: str) -> None:
        await self.redis.publish(self.cancel_channel, f"{sid} {mid}")


def new_message(
    role: Literal["user", "assistant"],
    content: str,
    status: Status,
    error: ErrorInfo | None = None,
) -> StoredMessage:
    return StoredMessage(
        id=new_id(),
        role=role,
        content=content,
        status=status,
        created_at=utcnow(),
        error=error,
    )
