"""Token usage per chat and per client, per day and model, in Redis.

Every reply that ends (complete, cut at its length, cancelled, failed, interrupted on the
way out) adds what it spent: the usage assistant reported, else an estimate (about four
UTF-8 bytes a token, as the limits and the context budget estimate), counted apart as
`estimated`. The completion tokens counted here are the very number the per-client token
limit adds (conversation.limits): `spent()` computes it once for both.

Keys: <prefix>:u:{<identity digest>}:<YYYY-MM-DD> (UTC), a hash per identity and day whose
fields are `<what>:<model id>` (r: replies, p: prompt tokens, c: completion tokens, e: the
estimated part), each key expiring USAGE_RETENTION_DAYS after its last write. A chat is the
limits' `session` identity of its id (which is also a Bearer token client's identity), a
browser its `browser` identity: digests, never the cookie.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import cast

from redis.commands.core import AsyncScript

from common.protocol import Usage
from conversation.limits import Identity, ScriptArg, estimate_tokens, run_scripts
from conversation.models import DayUsage, ModelUsage
from conversation.redis_client import RedisClient

FIELDS = {"r": "replies", "p": "prompt_tokens", "c": "completion_tokens", "e": "estimated_tokens"}
UNKNOWN_MODEL = "unknown"

# KEYS: one identity's day. ARGV: ttl, then field, amount pairs. One script, not a command per
# field: a reply's bookkeeping is one command per identity, sent with the others together.
ADD = r"""
for i = 2, #ARGV, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""


@dataclass(frozen=True, slots=True)
class Spent:
    prompt_tokens: int
    completion_tokens: int
    estimated: bool


def spent(usage: Usage | None, reply: str, prompt_bytes: int, reached_model: bool) -> Spent:
    """What a reply cost: assistant's count, else an estimate. Without a count, the prompt
    is counted only if the model wrote something (a request refused before the model ran
    spent nothing)."""
    if usage is not None:
        return Spent(usage.prompt_tokens, usage.completion_tokens, estimated=False)
    prompt = estimate_tokens(prompt_bytes) if reached_model else 0
    return Spent(prompt, estimate_tokens(len(reply.encode())), estimated=True)


def chat_identity(session_id: str) -> Identity:
    return Identity.of("session", session_id)


def today() -> date:
    return datetime.now(UTC).date()


class UsageBook:
    def __init__(self, redis: RedisClient, prefix: str, retention_days: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.retention_days = retention_days
        self._add: AsyncScript = redis.register_script(ADD)

    def key(self, identity: Identity, day: date) -> str:
        return f"{self.prefix}:u:{{{identity.digest}}}:{day.isoformat()}"

    async def record(self, identities: list[Identity], model: str | None, cost: Spent) -> None:
        """Add one reply's cost to each identity's today (each identity once)."""
        model = model or UNKNOWN_MODEL
        day = today()
        ttl = self.retention_days * 86400
        estimated = cost.prompt_tokens + cost.completion_tokens if cost.estimated else 0
        adds = {"r": 1, "p": cost.prompt_tokens, "c": cost.completion_tokens, "e": estimated}
        args: list[ScriptArg] = [ttl]
        for what, amount in adds.items():
            if amount:
                args += [f"{what}:{model}", amount]
        unique = {i.digest: i for i in identities}.values()
        await run_scripts(self.redis, [(self._add, [self.key(i, day)], args) for i in unique])

    async def report(self, identity: Identity, days: int) -> list[DayUsage]:
        """The identity's last `days` days, today first; days with nothing spent included."""
        first = today()
        dates = [first - timedelta(days=n) for n in range(days)]
        async with self.redis.pipeline(transaction=False) as pipe:
            for day in dates:
                pipe.hgetall(self.key(identity, day))
            raws = cast(list[dict[str, str]], await pipe.execute())
        return [
            DayUsage(date=d.isoformat(), models=_models(raw))
            for d, raw in zip(dates, raws, strict=True)
        ]


def _models(raw: dict[str, str]) -> list[ModelUsage]:
    by_model: dict[str, ModelUsage] = {}
    for field, value in raw.items():
        what, _, model = field.partition(":")
        if what not in FIELDS:
            continue
        entry = by_model.setdefault(model, ModelUsage(model=model))
        setattr(entry, FIELDS[what], int(value))
    for entry in by_model.values():
        entry.total_tokens = entry.prompt_tokens + entry.completion_tokens
    return sorted(by_model.values(), key=lambda m: m.model)
