"""Per-client limits, shared by every replica through Redis: what a client may spend.

A client is up to three identities, each limited on its own: its IP address (from nginx's
X-Real-IP when the peer is a trusted proxy; an IPv6 address counts as its /64, which one
machine usually has whole), its browser cookie, and the session of a Bearer token. Browser
ids and sessions cost nothing to make, so the IP's own, higher, limits are what bound a
client that makes many. For each identity:
- replies being written at once: a sorted set of admission tickets scored by the expiry of
  a lease, renewed while the reply is written and pruned at each admission, so the slots of
  a replica that dies come back by themselves once their lease lapses;
- turns per window: a sorted set of the window's tickets scored by start time (a sliding
  window: Retry-After is when the oldest counted turn leaves it);
- completion tokens per window: a counter that starts its window with the first reply
  counted, added to when a reply ends; over budget, turns are refused until the window ends.
Session creations per IP per window are a counter the same way.

Keys are <prefix>:l:<kind>:{<digest of the identity>}, each with an expiry. One identity's
keys share a hash tag, so each identity is checked by one atomic script; an admission sends
the scripts of all its identities in one pipeline (one round trip, whatever the number of
identities, and each script stays within one Redis Cluster slot). Each script admits only if
all of its identity's limits pass; if another identity refused, the admitted ones are
released again (a second round trip, on refusal only). Meanwhile they count the refused
turn for a moment, which can only refuse, never admit, a concurrent turn too many; if the
process dies before releasing them, the slot lapses with its lease and the turn leaves the
window with time. A turn that stores nothing (refused by the session's own checks, a
duplicate) is released the same way.

Not one script over every key of an admission under a hash tag derived from the IP: the
browser's and the session's counts would then be per address, so a client that moves
(a phone between networks) or spreads over many addresses would start afresh at each.

A reply's slot is held by an entry whose score is its lease's expiry (GENERATION_LEASE),
renewed along with the stream write that renews the generation's own lease (the two round
trips run side by side, each third of a lease), and freed, with the reply's tokens counted,
while the finished reply is stored: before its clients hear `done`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import math
import secrets
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError

from conversation.config import Settings
from conversation.errors import ConversationError
from conversation.redis_client import RedisClient

log = logging.getLogger(__name__)

IdentityKind = Literal["ip", "browser", "session"]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# What a refusal names the client by, in the sentence the UI shows.
WHO: dict[IdentityKind, str] = {
    "ip": "your network address",
    "browser": "this browser",
    "session": "this session",
}


class LimitExceeded(ConversationError):
    """A client is over one of its limits. `retry_after`: seconds until it is not (None: it
    will not pass by waiting, the client must make room first)."""


def wait_text(seconds: int) -> str:
    """A wait as people say it: 45 s, 3 min, 2 h 5 min."""
    if seconds < 60:
        return f"{seconds} s"
    minutes = math.ceil(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"


LimitName = Literal["generations", "turns", "tokens", "sessions"]


def rate_limited(name: LimitName, who: IdentityKind, limit: int, retry_ms: int) -> LimitExceeded:
    seconds = max(1, math.ceil(retry_ms / 1000))
    when, by = wait_text(seconds), WHO[who]
    if name == "sessions":
        message = (
            f"{limit} chats were started recently from {by}, the most allowed. "
            f"Start another in {when}."
        )
        return LimitExceeded("rate_limited", message, seconds)
    if name == "generations":
        what = f"{limit} replies are already being written for {by}, the most at once"
        retry = f"Send it again when one of them ends (in {when} at most)."
    elif name == "turns":
        what = f"{limit} messages were sent recently from {by}, the most allowed"
        retry = f"Send it again in {when}."
    else:
        what = f"Replies for {by} used their budget of {limit} tokens"
        retry = f"It renews in {when}."
    return LimitExceeded("rate_limited", f"{what}; your message was not saved. {retry}", seconds)


def too_many_sessions(limit: int) -> LimitExceeded:
    return LimitExceeded(
        "too_many_sessions",
        f"This browser already has {limit} chats, the most it may keep. "
        "Delete some to start a new one.",
    )


def session_full(limit: int, versions: bool = False) -> LimitExceeded:
    """`versions`: the limit on messages stored over all branches (edits, regenerations)."""
    held = f"{limit} messages counting every version" if versions else f"{limit} messages"
    return LimitExceeded(
        "session_full",
        f"This chat holds {held}, the most one chat may keep; your message was not "
        "saved. Start a new chat to go on.",
    )


# Identities ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Identity:
    kind: IdentityKind
    digest: str  # of what identifies it: key names never hold an address or a credential

    @classmethod
    def of(cls, kind: IdentityKind, value: str) -> Identity:
        return cls(kind, hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()[:32])


def parse_networks(spec: str) -> tuple[Network, ...]:
    """TRUSTED_PROXIES: addresses or networks, comma-separated."""
    return tuple(
        ipaddress.ip_network(p.strip(), strict=False) for p in spec.split(",") if p.strip()
    )


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _trusted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None, trusted: Iterable[Network]
) -> bool:
    return address is not None and any(address in net for net in trusted)


def client_address(
    peer: str | None, real_ip: str | None, forwarded_for: str | None, trusted: Sequence[Network]
) -> str:
    """The client's address: the peer's, unless the peer is a trusted proxy, which then
    names it in X-Real-IP (nginx) or, failing that, as the last address of X-Forwarded-For
    that is not itself a trusted proxy. An address that does not parse is not believed."""
    peer_address = _address(peer or "")
    if not _trusted(peer_address, trusted):
        # No address at all (a Unix socket): such clients share one count.
        return str(peer_address) if peer_address else (peer or "unknown")
    named = _address(real_ip or "")
    if named is not None:
        return str(named)
    for hop in reversed((forwarded_for or "").split(",")):
        address = _address(hop)
        if address is None:
            break
        if not _trusted(address, trusted):
            return str(address)
    return str(peer_address)


def ip_identity(address: str) -> Identity:
    """An IPv6 client counts as its /64: one machine is usually handed a whole /64."""
    parsed = _address(address)
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return Identity.of("ip", str(parsed.ipv4_mapped))
        return Identity.of("ip", str(ipaddress.ip_network(f"{parsed}/64", strict=False)))
    return Identity.of("ip", address)


@dataclass(frozen=True, slots=True)
class Client:
    """Who is asking: the IP first, then the browser and the session when known."""

    ip: Identity
    others: tuple[Identity, ...] = ()

    @property
    def identities(self) -> tuple[Identity, ...]:
        return (self.ip, *self.others)

    @classmethod
    def of(cls, address: str, browser: str | None = None, session_id: str | None = None) -> Client:
        """`browser`: the browser cookie; `session_id`: the session a Bearer token names."""
        others = []
        if browser:
            others.append(Identity.of("browser", browser))
        if session_id:
            others.append(Identity.of("session", session_id))
        return cls(ip_identity(address), tuple(others))


@dataclass(frozen=True, slots=True)
class Quota:
    """One kind of identity's limits; 0 turns a limit off."""

    generations: int
    turns: int
    tokens: int

    @property
    def off(self) -> bool:
        return not (self.generations or self.turns or self.tokens)


# Scripts ---------------------------------------------------------------------------------

_NOW = r"""
redis.replicate_commands()  -- Redis < 7: lets a script that reads the clock write
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
"""

# KEYS: C (replies being written: ticket -> lease expiry), T (turns: ticket -> start),
#       D (completion tokens counted in the current window)
# ARGV: ticket, lease_ms, max_generations, max_turns, turn_window_ms, max_tokens
# Returns {} when admitted (the ticket now holds a slot and counts as a turn), else the
# limit with the longest wait: {name, limit, wait_ms}. Each check costs O(log n) plus what
# it prunes, and n is at most the limit: no loop over a client's history.
ADMIT = (
    _NOW
    + r"""
local C, T, D = KEYS[1], KEYS[2], KEYS[3]
local ticket, lease = ARGV[1], tonumber(ARGV[2])
local most_gen, most_turns = tonumber(ARGV[3]), tonumber(ARGV[4])
local window, most_tokens = tonumber(ARGV[5]), tonumber(ARGV[6])
-- This very call run again (redis-py retries a command whose connection failed).
if redis.call('ZSCORE', C, ticket) or redis.call('ZSCORE', T, ticket) then return {} end
local over, wait, limit = nil, -1, 0
local function refuse(name, most, ms)
  if ms > wait then over, wait, limit = name, ms, most end
end
if most_gen > 0 then
  redis.call('ZREMRANGEBYSCORE', C, '-inf', now)
  local n = redis.call('ZCARD', C)
  if n >= most_gen then
    local first = redis.call('ZRANGE', C, 0, 0, 'WITHSCORES')
    refuse('generations', most_gen, tonumber(first[2]) - now)
  end
end
if most_turns > 0 then
  redis.call('ZREMRANGEBYSCORE', T, '-inf', now - window)
  local n = redis.call('ZCARD', T)
  if n >= most_turns then
    -- A turn may start once enough of the counted ones have left the window.
    local oldest = redis.call('ZRANGE', T, n - most_turns, n - most_turns, 'WITHSCORES')
    refuse('turns', most_turns, tonumber(oldest[2]) + window - now)
  end
end
if most_tokens > 0 then
  local used = tonumber(redis.call('GET', D) or '0')
  if used >= most_tokens then refuse('tokens', most_tokens, redis.call('PTTL', D)) end
end
if over then return {over, limit, wait} end
if most_gen > 0 then
  redis.call('ZADD', C, now + lease, ticket)
  -- Every entry expires within a lease of now: so does the key, unless renewed.
  redis.call('PEXPIRE', C, lease)
end
if most_turns > 0 then
  redis.call('ZADD', T, now, ticket)
  redis.call('PEXPIRE', T, window)
end
return {}
"""
)

# KEYS: C. ARGV: ticket, lease_ms. The reply is still being written: its slot lasts another
# lease (put back if it had lapsed: the reply does hold it).
RENEW = (
    _NOW
    + r"""
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
)

# KEYS: C, T, D. ARGV: ticket, tokens, token_window_ms, uncount ('1': the turn never started,
# so it does not count as one either). Frees the ticket's slot and adds the reply's tokens
# (a window starts with the first tokens counted). Run twice by a retry, it would count the
# tokens twice: rare, and erring against the client only.
RELEASE = r"""
redis.call('ZREM', KEYS[1], ARGV[1])
if ARGV[4] == '1' then redis.call('ZREM', KEYS[2], ARGV[1]) end
local tokens = tonumber(ARGV[2])
if tokens > 0 then
  redis.call('INCRBY', KEYS[3], tokens)
  if redis.call('PTTL', KEYS[3]) < 0 then redis.call('PEXPIRE', KEYS[3], ARGV[3]) end
end
return 1
"""

# KEYS: N (sessions created in the current window). ARGV: most, window_ms.
# Returns 0 (counted) or the milliseconds until the window ends.
COUNT_SESSION = r"""
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used >= tonumber(ARGV[1]) then return math.max(redis.call('PTTL', KEYS[1]), 1) end
redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


def estimate_tokens(utf8_bytes: int) -> int:
    """Tokens of a reply the model gave no count for, from its UTF-8 size: about four bytes
    each (as the turn script estimates context)."""
    return math.ceil(utf8_bytes / 4)


# Admission -------------------------------------------------------------------------------

ScriptArg = str | int
# c: replies being written, t: turns, d: tokens, n: sessions created.
LimitKey = Literal["c", "t", "d", "n"]
TURN_KEYS: tuple[LimitKey, ...] = ("c", "t", "d")


def limit_key(prefix: str, kind: LimitKey, identity: Identity) -> str:
    """The identity's digest is the hash tag: all its keys in one Redis Cluster slot."""
    return f"{prefix}:l:{kind}:{{{identity.digest}}}"


Call = tuple[AsyncScript, list[str], list[ScriptArg]]


async def run_scripts(redis: RedisClient, calls: list[Call]) -> list[Any]:
    """Scripts in one round trip: a pipeline of EVALSHA. (redis-py's own script calls in
    a pipeline first ask SCRIPT EXISTS, a round trip more.) A script Redis does not know
    (it restarted) did not run: it is loaded, and only such calls are sent again."""
    if isinstance(redis, RedisCluster):
        # A cluster pipeline refuses EVALSHA; the calls go to their nodes side by side.
        return list(await asyncio.gather(*(_call_one(redis, call) for call in calls)))
    results: list[Any] = [None] * len(calls)
    pending = list(range(len(calls)))
    while pending:
        async with redis.pipeline(transaction=False) as pipe:
            for i in pending:
                script, keys, args = calls[i]
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            out = await pipe.execute(raise_on_error=False)
        unknown = []
        for i, result in zip(pending, out, strict=True):
            if isinstance(result, NoScriptError):
                unknown.append(i)
            elif isinstance(result, Exception):
                raise result
            else:
                results[i] = result
        for script in {calls[i][0] for i in unknown}:
            await redis.script_load(script.script)
        pending = unknown
    return results


async def _call_one(redis: RedisClient, call: Call) -> Any:
    script, keys, args = call
    try:
        return await redis.evalsha(script.sha, len(keys), *keys, *args)
    except NoScriptError:
        await redis.script_load(script.script)
        return await redis.evalsha(script.sha, len(keys), *keys, *args)


# How long this process remembers that an identity was refused, and refuses it again without
# asking Redis. Never longer than the wait it was told (at least a second): only a client
# that ignores Retry-After meets the memory. A client flooding its refusals (a socket's
# frames, a loop of POSTs) otherwise costs two Redis round trips and every identity's script
# per attempt; remembered, one a second per identity and process. A slot freed on another
# replica is seen here up to this late; one freed here is seen at once (`forget`).
REFUSAL_MEMORY_S = 1.0
# Identities remembered at most (the memory is pruned of lapsed ones past this, then
# emptied): addresses from a whole IPv6 range cannot grow it without bound.
REFUSAL_MEMORY_MAX = 10_000


@dataclass(frozen=True, slots=True)
class Refusal:
    until: float  # the loop's clock: refused again without asking Redis until then
    ends: float  # when the wait told to the client ends
    name: LimitName
    kind: IdentityKind
    most: int


class Limits:
    def __init__(self, redis: RedisClient, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        s = settings
        self.lease_ms = int(s.generation_lease * 1000)
        self.turn_window_ms = int(s.limit_turn_window * 1000)
        self.token_window_ms = int(s.limit_token_window * 1000)
        self.session_window_ms = int(s.limit_session_window * 1000)
        self.trusted_proxies = parse_networks(s.trusted_proxies)
        client = Quota(s.limit_client_generations, s.limit_client_turns, s.limit_client_tokens)
        self.quotas: dict[IdentityKind, Quota] = {
            "ip": Quota(s.limit_ip_generations, s.limit_ip_turns, s.limit_ip_tokens),
            "browser": client,
            "session": client,
        }
        self._admit: AsyncScript = redis.register_script(ADMIT)
        self._renew: AsyncScript = redis.register_script(RENEW)
        self._release: AsyncScript = redis.register_script(RELEASE)
        self._count_session: AsyncScript = redis.register_script(COUNT_SESSION)
        self._refused: dict[Identity, Refusal] = {}

    def key(self, kind: LimitKey, identity: Identity) -> str:
        return limit_key(self.settings.key_prefix, kind, identity)

    async def _run(self, calls: list[Call]) -> list[Any]:
        return await run_scripts(self.redis, calls)

    async def admit(self, client: Client) -> Admission:
        """Count a turn against every identity of `client`, taking a slot for its reply;
        raises LimitExceeded (nothing counted) when any identity is over a limit."""
        limited = [i for i in client.identities if not self.quotas[i.kind].off]
        admission = Admission(self, limited, client=client)
        if not limited:
            return admission
        now = asyncio.get_running_loop().time()
        for identity in limited:
            memo = self._refused.get(identity)
            if memo is not None and memo.until > now:
                wait_ms = math.ceil((memo.ends - now) * 1000)
                raise rate_limited(memo.name, memo.kind, memo.most, wait_ms)
        calls: list[Call] = []
        for identity in limited:
            q = self.quotas[identity.kind]
            keys = [self.key(k, identity) for k in TURN_KEYS]
            args: list[ScriptArg] = [admission.ticket, self.lease_ms, q.generations, q.turns]
            calls.append((self._admit, keys, [*args, self.turn_window_ms, q.tokens]))
        answers = await self._run(calls)
        refusals = [(a, i) for a, i in zip(answers, limited, strict=True) if a]
        if not refusals:
            return admission
        admitted = [i for a, i in zip(answers, limited, strict=True) if not a]
        await Admission(self, admitted, admission.ticket).release(started=False)
        (name, most, wait), identity = max(refusals, key=lambda r: int(r[0][2]))
        refusal = rate_limited(cast(LimitName, str(name)), identity.kind, int(most), int(wait))
        self._remember(identity, refusal, cast(LimitName, str(name)), int(most), now)
        raise refusal

    def _remember(
        self, identity: Identity, refusal: LimitExceeded, name: LimitName, most: int, now: float
    ) -> None:
        told = refusal.retry_after or 1  # seconds, as the client was told
        if len(self._refused) >= REFUSAL_MEMORY_MAX:
            self._refused = {i: r for i, r in self._refused.items() if r.until > now}
            if len(self._refused) >= REFUSAL_MEMORY_MAX:
                self._refused.clear()
        until = now + min(told, REFUSAL_MEMORY_S)
        self._refused[identity] = Refusal(until, now + told, name, identity.kind, most)

    def forget(self, identities: Iterable[Identity]) -> None:
        """A slot of these identities was freed here: their refusals no longer hold."""
        for identity in identities:
            self._refused.pop(identity, None)

    async def count_session(self, client: Client) -> None:
        """Count a session created from `client`'s IP; raises LimitExceeded over the limit."""
        most = self.settings.limit_ip_sessions
        if not most:
            return
        call: Call = (
            self._count_session,
            [self.key("n", client.ip)],
            [most, self.session_window_ms],
        )
        wait = int((await self._run([call]))[0])
        if wait:
            raise rate_limited("sessions", "ip", most, wait)


@dataclass(slots=True)
class Admission:
    """A turn counted against its client's identities, and the slot its reply holds."""

    limits: Limits
    identities: list[Identity]
    ticket: str = field(default_factory=lambda: secrets.token_hex(8))
    _released: bool = False
    client: Client | None = None  # who asked (its usage is counted when the reply ends)

    async def renew(self) -> None:
        """Another lease for the reply's slots. A failure is only logged: the slot then
        lapses with its lease, freed early rather than held."""
        lim = self.limits
        held = [i for i in self.identities if lim.quotas[i.kind].generations]
        if self._released or not held:
            return
        calls: list[Call] = [
            (lim._renew, [lim.key("c", i)], [self.ticket, lim.lease_ms]) for i in held
        ]
        try:
            await lim._run(calls)
        except RedisError:
            log.warning("could not renew the limits lease of %s", self.ticket, exc_info=True)

    @contextlib.asynccontextmanager
    async def renewing(self) -> AsyncIterator[None]:
        """Renew the lease each third of it while the body runs: for a reply written without
        a generation (whose stream writes renew it), silent stretches included."""

        async def renew_forever() -> None:
            while True:
                await asyncio.sleep(self.limits.lease_ms / 3000)
                await self.renew()

        task = asyncio.create_task(renew_forever())
        try:
            yield
        finally:
            task.cancel()

    async def release(self, tokens: int = 0, started: bool = True) -> None:
        """Free the reply's slots and count its `tokens`; `started=False`: the turn did not
        start (nothing stored), so it does not count as a turn either. Once only; a failure
        is only logged (the slots come back when their lease lapses)."""
        if self._released:
            return
        self._released = True
        if not self.identities:
            return
        lim = self.limits
        lim.forget(self.identities)
        args: list[ScriptArg] = [self.ticket, tokens, lim.token_window_ms, "0" if started else "1"]
        calls: list[Call] = [
            (lim._release, [lim.key(k, i) for k in TURN_KEYS], args) for i in self.identities
        ]
        try:
            await lim._run(calls)
        except RedisError:
            log.warning("could not release the limits of %s", self.ticket, exc_info=True)


# WebSocket frames ------------------------------------------------------------------------


@dataclass(slots=True)
class FrameBucket:
    """One socket's frame rate: `burst` frames at once, then `rate` per second (a token
    bucket, in the socket's process: a socket lives on one replica)."""

    rate: float
    burst: int
    tokens: float = -1.0  # full at the first frame
    at: float = 0.0

    def take(self, now: float) -> float:
        """0 when a frame may pass (it takes its token), else seconds until one may."""
        if self.tokens < 0:
            self.tokens = self.burst
        else:
            self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


def frames_too_fast(rate: float, wait: float) -> LimitExceeded:
    seconds = max(1, math.ceil(wait))
    return LimitExceeded(
        "rate_limited",
        f"Too many frames on this connection (at most {rate:g} a second); this one was "
        f"ignored. Wait {seconds} s; another frame before then closes the connection.",
        seconds,
    )
