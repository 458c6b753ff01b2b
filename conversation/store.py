"""Sessions, messages and reply streams in Redis.

Every public method is one round trip (a pipeline or a script), so a chat turn costs two
outside streaming: start the turn (which checks the credentials), finish the reply. A script
that may touch the stream of P's `live` reply costs one more when this process's memory of
that reply is out of date (see redis_scripts' docstring): a turn on a replica that has not
seen the session since its last turn elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from conversation import redis_scripts
from conversation.config import Settings
from conversation.expiring_hash import hset_expiring
from conversation.limits import too_many_sessions
from conversation.models import ErrorInfo, Status, StoredMessage
from conversation.redis_client import RedisClient
from conversation.redis_scripts import ScriptArg, argv

StreamEntry = tuple[str, dict[str, str]]


# A session id as create_session makes them: anything else is no session, without asking Redis.
SESSION_ID = re.compile(r"[0-9a-f]{32}")

# Calls of a script that needs the stream of P's `live` reply, at most: the second follows a
# memory out of date, each later one a turn started since the call before (turns started
# faster than round trips, which the session's generation lock all but rules out).
LIVE_TRIES = 4
# Sessions whose `live` reply this process remembers; past it the memory starts again (it is
# only a guess: a wrong one costs a round trip).
LIVE_REMEMBERED = 10_000


class LiveReplyMoving(RedisError):
    """P's `live` reply changed under every try: a Redis-side condition that passes, answered
    like an unavailable Redis (503, try again)."""


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
    model: str = ""  # "": assistant's default
    named_by_user: bool = False
    titled: bool = False  # a generated title replaced the first message's


@dataclass(frozen=True, slots=True)
class ChatModel:
    """The session's model and title state, as a turn's start finds them."""

    model: str | None  # None: assistant's default
    wants_title: bool  # neither titled nor named by a person yet


@dataclass(frozen=True, slots=True)
class Claim:
    """A claim to a session: the digests of the credentials a request presented, unchecked.

    Redis checks them in the script that reads or changes the session (redis_scripts.authorized),
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

    def script_args(self) -> dict[str, ScriptArg]:
        """The scripts' arguments of the same names (redis_scripts.authorized)."""
        return {
            "token_hash": self.token_hash,
            "owner_hash": self.owner_hash,
            "cookie_allowed": "1" if self.cookie_allowed else "0",
        }


# Why a claim was refused: no match or no such session (one answer, so that neither is
# revealed), or only the cookie matched on a request that failed the CSRF guard.
ClaimRefusal = Literal["denied", "csrf"]


# empty: nothing to answer; not_on_path: the message to edit or regenerate is not on the
# active path; not_user / not_reply: it is not a user message (edit) / a reply (regenerate);
# full: the active path is at MAX_MESSAGES_PER_SESSION; full_tree: the session stores
# MAX_STORED_MESSAGES_PER_SESSION messages over all its branches.
TurnRefusal = Literal[
    "busy", "empty", "not_on_path", "not_user", "not_reply", "not_continuable", "full", "full_tree"
]
_SCRIPT_REFUSALS = ("empty", "not_on_path", "not_user", "not_reply", "not_continuable")


@dataclass(frozen=True, slots=True)
class TurnStarted:
    user: StoredMessage
    context: list[StoredMessage]  # oldest first, ending with the user message
    system_prompt: str
    chat: ChatModel  # the session's model and title state, read by the same script


@dataclass(frozen=True, slots=True)
class TurnDuplicate:
    user: StoredMessage
    reply: StoredMessage | None


@dataclass(frozen=True, slots=True)
class TurnRefused:
    reason: TurnRefusal | ClaimRefusal
    holder: str = ""


TurnOutcome = TurnStarted | TurnDuplicate | TurnRefused


@dataclass(frozen=True, slots=True)
class Siblings:
    """A message's place among the versions of it: its parent's children, oldest first."""

    index: int  # 1-based
    count: int


@dataclass(frozen=True, slots=True)
class HistoryPage:
    messages: list[StoredMessage]  # oldest first, on the active path
    has_more: bool  # older messages exist
    siblings: list[Siblings]  # each message's, in the same order


@dataclass(frozen=True, slots=True)
class MessageTree:
    """Every message of a session, every branch."""

    messages: dict[str, StoredMessage]
    children: dict[str, list[str]]  # parent id ("": the first messages) -> ids, oldest first
    active: list[str]  # the active path, oldest first


@dataclass(frozen=True, slots=True)
class SwitchRefused:
    # busy: a reply is being written; gone: no such message (or session);
    # sibling_index: the message has no sibling at that position (it has sibling_count).
    reason: Literal["busy", "gone", "sibling_index"]
    holder: str = ""
    sibling_count: int = 0


@dataclass(frozen=True, slots=True)
class PathPlace:
    """Where a message is: its index on the active path (None: not on it), the path's
    length, and whether the session holds the message at all (on any branch)."""

    index: int | None
    length: int
    held: bool


class NoSuchMessage(Exception):
    """A message id the session does not hold (a paging cursor, say)."""


TurnMode = Literal["message", "regenerate", "edit", "continue"]


def _message(raw: str) -> StoredMessage:
    return StoredMessage.model_validate_json(raw)


@dataclass(frozen=True, slots=True)
class Keys:
    """The key names; the layout is explained once, in redis_scripts.py's docstring."""

    prefix: str

    def session(self, sid: str) -> str:
        return f"{self.prefix}:s:{{{sid}}}"

    def family(self, sid: str) -> list[str]:
        """The session's keys, in the order the scripts take them (redis_scripts.FAMILY)."""
        key = self.session(sid)
        return [key + suffix for suffix in redis_scripts.FAMILY]

    def stream(self, sid: str, mid: str) -> str:
        return f"{self.session(sid)}:r:{mid}"

    def tailed(self, sid: str, mid: str) -> str:
        """Set while a reader tails the reply's stream from Redis."""
        return f"{self.stream(sid, mid)}:w"

    def owner(self, owner: str) -> str:
        return f"{self.prefix}:b:{owner}"

    def import_index(self, owner: str) -> str:
        """Browser `owner`'s import index (the layout: conversation/imports.py)."""
        return f"{self.prefix}:imp:{{{owner}}}"

    def import_claim(self, owner: str, source: str) -> str:
        """The claim on importing chat `source` (a digest); in the import index's slot."""
        return f"{self.import_index(owner)}:c:{source}"


class Store:
    def __init__(self, redis: RedisClient, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self.cancel_channel = f"{settings.key_prefix}:cancel"
        # A reply stream never outlives its session.
        self._retention = min(settings.stream_retention, settings.session_ttl)
        self._begin: AsyncScript = redis.register_script(redis_scripts.BEGIN_TURN)
        self._flush: AsyncScript = redis.register_script(redis_scripts.FLUSH)
        self._finish: AsyncScript = redis.register_script(redis_scripts.FINISH)
        self._queued: AsyncScript = redis.register_script(redis_scripts.QUEUED)
        self._check_live: AsyncScript = redis.register_script(redis_scripts.CHECK_LIVE)
        self._read_history: AsyncScript = redis.register_script(redis_scripts.READ_HISTORY)
        self._switch: AsyncScript = redis.register_script(redis_scripts.SWITCH)
        self._read_meta: AsyncScript = redis.register_script(redis_scripts.READ_META)
        self._create: AsyncScript = redis.register_script(redis_scripts.CREATE)
        self._index: AsyncScript = redis.register_script(redis_scripts.INDEX)
        self._delete: AsyncScript = redis.register_script(redis_scripts.DELETE)
        self._append: AsyncScript = redis.register_script(redis_scripts.APPEND)
        self._update_meta: AsyncScript = redis.register_script(redis_scripts.UPDATE_META)
        # Session id -> the reply P's `live` named when this process last saw it.
        self._live: dict[str, str] = {}

    # The live reply ---------------------------------------------------------------------

    def _remember_live(self, sid: str, live: str | None) -> None:
        if live is None:
            self._live.pop(sid, None)
            return
        if len(self._live) >= LIVE_REMEMBERED and sid not in self._live:
            self._live.clear()
        self._live[sid] = live

    async def _with_live(
        self,
        script: AsyncScript,
        sid: str,
        keys: list[str],
        args: list[ScriptArg],
        tailed: bool = False,
    ) -> Any:
        """Run a script that may touch the stream of P's `live` reply (and, `tailed`, its
        readers' mark): its KEYS are `keys`, then that reply's as this process last knew it,
        again with the reply the script answers 'stale' with."""
        live = self._live.get(sid)
        for _ in range(LIVE_TRIES):
            declared = []
            if live:
                declared.append(self.keys.stream(sid, live))
                if tailed:
                    declared.append(self.keys.tailed(sid, live))
            out = await script(keys=[*keys, *declared], args=args)
            # Only the stale answer is two items with that first one (a history has three).
            if not (isinstance(out, list) and len(out) == 2 and out[0] == "stale"):
                return out
            live = str(out[1])
            self._remember_live(sid, live)
        raise LiveReplyMoving(f"the live reply of session {sid} kept changing")

    def expires_at(self) -> datetime:
        """Every request renews the session, so it expires SESSION_TTL from now."""
        return utcnow() + timedelta(seconds=self.settings.session_ttl)

    # Sessions ------------------------------------------------------------------------

    async def create_session(
        self,
        name: str,
        system_prompt: str,
        owner: str,
        model: str = "",
        named_by_user: bool = False,
        created_at: datetime | None = None,
    ) -> tuple[SessionMeta, str]:
        """A new session and its token. Two steps, in two slots of a Redis Cluster: the
        browser's index (which may refuse: too many sessions), then the session. A crash
        between them leaves an index entry whose session does not exist, which listing the
        index drops."""
        sid = secrets.token_hex(16)
        # The token names its session, so a client holding only the token (the tutorials'
        # interfaces) finds it without a token -> session key in another slot.
        token = f"{sid}.{secrets.token_urlsafe(32)}"
        meta = SessionMeta(
            session_id=sid,
            name=name,
            created_at=created_at or utcnow(),
            token_hash=digest(token),
            owner=owner,
            system_prompt=system_prompt,
            model=model,
            named_by_user=named_by_user,
        )
        fields: dict[str, str] = {
            "name": meta.name,
            "created_at": meta.created_at.isoformat(),
            "th": meta.token_hash,
            "owner": owner,
            "system": system_prompt,
            "model": model,
            "named": "1" if named_by_user else "",
        }
        if owner:
            await self._add_to_index(owner, sid, meta.created_at.timestamp())
        flat = [item for pair in fields.items() for item in pair]
        await self._create(keys=[self.keys.session(sid)], args=[self.settings.session_ttl, *flat])
        return meta, token

    async def _add_to_index(self, owner: str, sid: str, created: float) -> None:
        """Add a session to its browser's index, within MAX_SESSIONS_PER_BROWSER: at the
        limit, the ids of sessions that expired are dropped first (only then: it reads up to
        that many sessions, across slots)."""
        most = self.settings.max_sessions_per_browser
        owned = self.keys.owner(owner)
        args: list[ScriptArg] = [sid, created, self.settings.cookie_max_age, most]
        if await self._index(keys=[owned], args=args):
            return
        sids = cast(list[str], await self.redis.zrange(owned, 0, most - 1))
        async with self.redis.pipeline(transaction=False) as pipe:
            for other in sids:
                pipe.exists(self.keys.session(other))
            alive = await pipe.execute()
        if dead := [other for other, found in zip(sids, alive, strict=True) if not found]:
            await self.redis.zrem(owned, *dead)
        if not await self._index(keys=[owned], args=args):
            raise too_many_sessions(most)

    async def get_meta(self, claim: Claim) -> SessionMeta | ClaimRefusal:
        """The session's settings if `claim` grants it; renews its expiry then, as every
        authorized request does."""
        sid = claim.session_id
        args = argv(
            redis_scripts.READ_META_ARGV, {"ttl": self.settings.session_ttl, **claim.script_args()}
        )
        out = cast(list[str], await self._read_meta(keys=self.keys.family(sid), args=args))
        if out[0] != "ok":
            return cast(ClaimRefusal, out[0])
        flat = out[1:]
        raw = dict(zip(flat[::2], flat[1::2], strict=True))
        self._remember_live(sid, raw.get("live"))
        return self._meta(sid, raw)

    @staticmethod
    def _meta(sid: str, raw: dict[str, str]) -> SessionMeta:
        return SessionMeta(
            session_id=sid,
            name=raw.get("name", ""),
            created_at=datetime.fromisoformat(raw["created_at"]),
            token_hash=raw["th"],
            owner=raw.get("owner", ""),
            system_prompt=raw.get("system", ""),
            model=raw.get("model", ""),
            named_by_user=raw.get("named") == "1",
            titled=raw.get("titled") == "1",
        )

    async def session_for_token(self, token: str) -> SessionMeta | None:
        """The session a token belongs to (the tutorials' API names sessions by token)."""
        sid, dot, _ = token.partition(".")
        if not dot or not SESSION_ID.fullmatch(sid):
            return None
        meta = await self.get_meta(Claim.for_token(sid, token))
        return meta if isinstance(meta, SessionMeta) else None

    async def update(self, sid: str, name: str | None = None, model: str | None = None) -> None:
        """A person's change to the chat: its name (which no generated title then
        replaces), its model, or both, in one step."""
        fields: list[str] = []
        if name is not None:
            fields += ["name", name, "named", "1"]
        if model is not None:
            fields += ["model", model]
        await self._update_meta(keys=[self.keys.session(sid)], args=["0", *fields])

    async def set_title(self, sid: str, title: str) -> bool:
        """The generated title, unless a person named the chat meanwhile (or it is gone)."""
        args = ["1", "name", title, "titled", "1"]
        return bool(await self._update_meta(keys=[self.keys.session(sid)], args=args))

    async def delete(self, meta: SessionMeta) -> str | None:
        """Remove every key of the session, then its entry in the browser's index (another
        slot in a Redis Cluster; an entry left by a crash between is dropped when the index
        is read). Returns the reply it was writing, if any, whose generation the caller
        stops (its later stream writes cannot recreate the stream: see redis_scripts.FLUSH)."""
        sid = meta.session_id
        out = await self._with_live(self._delete, sid, self.keys.family(sid), [], tailed=True)
        self._remember_live(sid, None)
        live = cast(list[str], out)[1] if len(out) > 1 else None
        if meta.owner:
            await self.redis.zrem(self.keys.owner(meta.owner), sid)
        return live

    async def owned_ids(self, owner: str) -> list[str]:
        """The ids in a browser's index, newest first; some may be of sessions that expired."""
        return cast(list[str], await self.redis.zrevrange(self.keys.owner(owner), 0, -1))

    async def owned_sessions(self, owner: str, limit: int = 200) -> list[tuple[SessionMeta, int]]:
        """A browser's sessions, newest first, each with its seconds to live."""
        owned = self.keys.owner(owner)
        sids = cast(list[str], await self.redis.zrevrange(owned, 0, limit - 1))
        if not sids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for sid in sids:
                pipe.hgetall(self.keys.session(sid))
                pipe.ttl(self.keys.session(sid))
            replies = await pipe.execute()
        found: list[tuple[SessionMeta, int]] = []
        expired: list[str] = []
        for i, sid in enumerate(sids):
            raw = replies[2 * i]
            # An expired session leaves its id behind in the browser's index.
            if not raw or "created_at" not in raw:
                expired.append(sid)
            else:
                found.append((self._meta(sid, raw), max(int(replies[2 * i + 1]), 0)))
        if expired:
            await self.redis.zrem(owned, *expired)
        return found

    async def history(
        self, sid: str, limit: int = 0, before: str | None = None
    ) -> HistoryPage | None:
        """The active path's messages in order, each with its place among its siblings: the
        newest `limit` (0: all) older than message `before` (None: the newest); renews the
        session. None when the session is gone.

        A reply still being written shows the text stored so far.
        """
        s = self.settings
        args: list[ScriptArg] = [s.session_ttl, self._retention, limit, before or ""]
        out = cast(
            list[str] | None,
            await self._with_live(self._read_history, sid, self.keys.family(sid), args),
        )
        if out is None:
            return None
        if out[0] == "gone":
            raise NoSuchMessage(before or "")
        live_id, live_text = out[0], out[1]
        messages = [_message(raw) for raw in out[3::2]]
        for m in messages:
            if m.id == live_id:
                m.content = live_text
        siblings = [Siblings(*map(int, place.split())) for place in out[4::2]]
        return HistoryPage(messages, has_more=out[2] == "1", siblings=siblings)

    async def path_place(self, sid: str, mid: str) -> PathPlace:
        """Where message `mid` is in the session (bounded: the active path holds at most
        MAX_MESSAGES_PER_SESSION ids). Reads only: the caller's read renewed the session."""
        key = self.keys.session(sid)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.lpos(f"{key}:o", mid)
            pipe.llen(f"{key}:o")
            pipe.hexists(f"{key}:m", mid)
            index, length, held = await pipe.execute()
        return PathPlace(index, int(length), bool(held))

    async def path_id_at(self, sid: str, index: int) -> str | None:
        """The id of the active path's message at `index` (from 0), None past its end."""
        return cast(str | None, await self.redis.lindex(f"{self.keys.session(sid)}:o", index))

    async def switch(
        self, sid: str, message_id: str, sibling_index: int | None
    ) -> SwitchRefused | None:
        """Make the active path run through `message_id` (or its sibling at
        `sibling_index`) and, below it, the branch last shown there. None when done."""
        args = argv(
            redis_scripts.SWITCH_ARGV,
            {
                "ttl": self.settings.session_ttl,
                "mid": message_id,
                "sibling_index": "" if sibling_index is None else sibling_index,
            },
        )
        out = cast(list[str] | None, await self._switch(keys=self.keys.family(sid), args=args))
        if out is None or out[0] == "gone":
            return SwitchRefused("gone")
        if out[0] == "busy":
            return SwitchRefused("busy", holder=out[1])
        if out[0] == "bad":
            return SwitchRefused("sibling_index", sibling_count=int(out[1]))
        return None

    async def read_tree(self, sid: str) -> MessageTree:
        """Every message of every branch, with the tree's shape and the active path. The
        caller has authorized the read (which renewed the session)."""
        key = self.keys.session(sid)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(f"{key}:m")
            pipe.hgetall(f"{key}:k")
            pipe.lrange(f"{key}:o", 0, -1)
            raw, tree, active = await pipe.execute()
        messages = {mid: _message(blob) for mid, blob in raw.items()}
        children: dict[str, list[str]] = {
            field[2:]: json.loads(kids) for field, kids in tree.items() if field.startswith("c:")
        }
        # A session stored before the tree has none yet: its path is its one branch.
        for parent, child in zip(["", *active], active, strict=False):
            if child not in children.setdefault(parent, []):
                children[parent].append(child)
        return MessageTree(messages, children, list(active))

    # Turns ---------------------------------------------------------------------------

    async def begin_turn(
        self,
        claim: Claim,
        mode: TurnMode,
        user: StoredMessage,
        reply: StoredMessage,
        client_message_id: str | None,
        token_budget: int,
        target: str = "",
    ) -> TurnOutcome:
        """Start a turn (see redis_scripts.BEGIN_TURN). `user`: the new message (edit: the
        new version of `target`); `target`: the message edited, or the reply regenerated
        ("": the last)."""
        s = self.settings
        args = argv(
            redis_scripts.BEGIN_TURN_ARGV,
            {
                "ttl": s.session_ttl,
                "lease": int(s.generation_lease * 1000),
                "retention": self._retention,
                "mode": mode,
                "cmid": client_message_id or "",
                "user_id": user.id,
                "user_json": user.model_dump_json(exclude_none=True),
                "reply_id": reply.id,
                "reply_json": reply.model_dump_json(exclude_none=True),
                "token_budget": token_budget,
                "target": target,
                "most_context": s.context_max_messages,
                "max_path": s.max_messages_per_session,
                "max_stored": s.max_stored_messages_per_session,
                **claim.script_args(),
            },
        )
        sid = claim.session_id
        keys = [*self.keys.family(sid), self.keys.stream(sid, reply.id)]
        out = cast(list[str], await self._with_live(self._begin, sid, keys, args))
        kind = out[0]
        if kind == "ok":
            self._remember_live(sid, reply.id)
            system, model, wants_title, user_json, *newest_first = out[1:]
            return TurnStarted(
                user=_message(user_json),
                context=[_message(raw) for raw in reversed(newest_first)],
                system_prompt=system,
                chat=ChatModel(model or None, wants_title=wants_title == "1"),
            )
        if kind == "dup":
            return TurnDuplicate(user=_message(out[1]), reply=_message(out[2]) if out[2] else None)
        if kind == "busy":
            return TurnRefused(reason="busy", holder=out[1])
        if kind in ("full", "full_tree"):
            return TurnRefused(reason=cast(TurnRefusal, kind))
        if kind in ("denied", "csrf"):
            return TurnRefused(reason=cast(ClaimRefusal, kind))
        if kind == "bad" and out[1] in _SCRIPT_REFUSALS:
            return TurnRefused(reason=cast(TurnRefusal, out[1]))
        raise RuntimeError(f"unexpected begin-turn reply {kind!r}")

    async def append_messages(
        self, sid: str, messages: list[StoredMessage], active: list[str] | None = None
    ) -> bool:
        """Add finished messages (an import, a copy of a shared chat): a tree, each naming
        its `parent` (None: a first message), parents first; `active` is the path to show
        (None: the messages as one path, each the parent of the next). One script: all or
        nothing. False when the session is gone."""
        if active is None:
            messages = [
                m.model_copy(update={"parent": messages[i - 1].id if i else None})
                for i, m in enumerate(messages)
            ]
            active = [m.id for m in messages]
        pairs = [[m.id, m.model_dump_json(exclude_none=True)] for m in messages]
        args = argv(
            redis_scripts.APPEND_ARGV,
            {
                "ttl": self.settings.session_ttl,
                "messages": json.dumps(pairs),
                "active": json.dumps(active),
            },
        )
        return bool(await self._append(keys=self.keys.family(sid), args=args))

    async def flush(
        self, sid: str, mid: str, end: int, text: str, expire: bool = True, renew: bool = True
    ) -> bool:
        """Append text ending at offset `end` to the reply's stream. `expire`: (re)set the
        stream's retention (always with its first entry); `renew`: renew the generation's
        lease (when each is due: conversation/flush_schedule.py). True when a reader
        elsewhere is tailing the stream."""
        keys = [self.keys.stream(sid, mid), self.keys.tailed(sid, mid)]
        args: list[ScriptArg] = [end, text]
        if expire or renew:
            args.append(self._retention if expire else "")
        if renew:
            keys.append(f"{self.keys.session(sid)}:g")
            args.append(int(self.settings.generation_lease * 1000))
        return bool(await self._flush(keys=keys, args=args))

    async def queued(self, sid: str, mid: str, length: int, place: int) -> None:
        """The reply's place in the model's queue, before its text, into its stream."""
        stream = self.keys.stream(sid, mid)
        await self._queued(keys=[stream], args=[length, place, self._retention])

    async def finish(self, sid: str, reply: StoredMessage, flushed: int) -> None:
        """Store the finished reply, end its stream and release the session's generation."""
        end = len(reply.content)
        key = self.keys.session(sid)
        keys = [f"{key}:m", self.keys.stream(sid, reply.id), f"{key}:g"]
        args = argv(
            redis_scripts.FINISH_ARGV,
            {
                "mid": reply.id,
                "final": reply.model_dump_json(exclude_none=True),
                "kind": reply.status,
                "text_id": f"{end}-0",
                "text": reply.content[flushed:],
                # After any queue places at the same length (redis_scripts.QUEUED).
                "terminal_id": f"{end}-*",
                "retention": self._retention,
            },
        )
        await self._finish(keys=keys, args=args)

    async def get_message(self, sid: str, mid: str) -> StoredMessage | None:
        raw = cast(str | None, await self.redis.hget(f"{self.keys.session(sid)}:m", mid))
        return None if raw is None else _message(raw)

    async def check_live(self, sid: str, mid: str) -> StoredMessage | None:
        """The message; a reply whose writer died is marked interrupted first."""
        keys = [*self.keys.family(sid), self.keys.stream(sid, mid)]
        raw = cast(str | None, await self._check_live(keys=keys, args=[mid, self._retention]))
        return None if raw is None else _message(raw)

    async def read_stream(self, sid: str, mid: str, after: str, block_ms: int) -> list[StreamEntry]:
        """New entries after `after`, waiting up to `block_ms`; tells the writer someone is
        tailing (it then writes every STREAM_FLUSH_MS instead of STREAM_UNWATCHED_FLUSH_MS)."""
        key = self.keys.stream(sid, mid)
        async with self.redis.pipeline(transaction=False) as pipe:
            # Outlives the wait below with room to spare; gone soon after the reader leaves.
            pipe.set(self.keys.tailed(sid, mid), 1, px=2 * block_ms + 1000)
            pipe.xread({key: after}, count=1000, block=block_ms)
            reply: Any = (await pipe.execute())[1]
        if not reply:
            return []
        # RESP2 gives [[key, entries]], RESP3 {key: [entries]}.
        streams = reply.values() if isinstance(reply, dict) else [e for _, e in reply]
        return [(str(eid), dict(fields)) for entries in streams for eid, fields in entries]

    async def publish_cancel(self, sid: str, mid: str) -> None:
        await self.redis.publish(self.cancel_channel, f"{sid} {mid}")

    # Import claims (what they hold and why: conversation/imports.py) -------------------

    async def claim_import(self, owner: str, source: str, seconds: int) -> bool:
        """Claim storing chat `source` (a digest) as browser `owner`'s for `seconds`, unless
        a claim exists. True: the claim is the caller's, holding "" (no session yet)."""
        key = self.keys.import_claim(owner, source)
        return bool(await self.redis.set(key, "", nx=True, ex=seconds))

    async def import_claim_holder(self, owner: str, source: str) -> str | None:
        """What the claim holds: "" while its chat is stored, then the session made of it;
        None: no claim."""
        return cast(str | None, await self.redis.get(self.keys.import_claim(owner, source)))

    async def name_import_claim(self, owner: str, source: str, sid: str) -> None:
        """Let a claim that still exists name session `sid`, keeping its expiry."""
        key = self.keys.import_claim(owner, source)
        await self.redis.set(key, sid, xx=True, keepttl=True)

    async def release_import_claim(self, owner: str, source: str) -> None:
        await self.redis.delete(self.keys.import_claim(owner, source))

    async def imported_session(self, owner: str, source: str) -> str | None:
        """The session an earlier import of chat `source` made for browser `owner`, while
        that session still exists."""
        before = cast(str | None, await self.redis.hget(self.keys.import_index(owner), source))
        if before and await self.redis.exists(self.keys.session(before)):
            return before
        return None

    async def record_import(self, owner: str, source: str, sid: str, seconds: int) -> None:
        """Note in browser `owner`'s import index that chat `source` became session `sid`;
        the index lives `seconds` from this write."""
        index = self.keys.import_index(owner)
        await hset_expiring(self.redis, index, source, sid, seconds)


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
