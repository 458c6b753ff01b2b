"""One conversation replica's domain objects (Store, Hub, Turns, Limits), wired as the app's
lifespan wires them but without its HTTP layer, for tests of turns, streams and generation."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from conversation.assistant_client import AssistantClient, create_http_session
from conversation.catalogue import Catalogue
from conversation.config import Settings
from conversation.events import Event
from conversation.hub import Hub
from conversation.limits import Client, Limits
from conversation.metrics import ConversationMetrics
from conversation.redis_client import RedisClient, connect_redis
from conversation.redis_timing import Timings
from conversation.store import Claim, Store
from conversation.streams import Events
from conversation.titles import Titles
from conversation.turns import Turn, Turns
from conversation.usage import UsageBook
from tests.support.scripted_assistant import ScriptedAssistant, ScriptedReply

CLIENT = Client.of("192.0.2.1")

Connect = Callable[[Settings, Timings], Awaitable[RedisClient]]


@dataclass
class Replica:
    """One conversation process's domain objects, without its HTTP layer."""

    settings: Settings
    store: Store
    hub: Hub
    turns: Turns
    metrics: ConversationMetrics


@contextlib.asynccontextmanager
async def replica(settings: Settings, connect: Connect = connect_redis) -> AsyncIterator[Replica]:
    """`connect`: how the replica reaches Redis (as the app does, by default)."""
    metrics = ConversationMetrics()
    redis = await connect(settings, Timings(metrics.redis_latency))
    http = create_http_session(settings)
    store = Store(redis, settings)
    assistant = AssistantClient(http, settings)
    catalogue = Catalogue(assistant.models, settings.catalogue_refresh_interval)
    titles = Titles(store, assistant, catalogue, settings, metrics)
    usage = UsageBook(redis, settings.key_prefix, settings.usage_retention_days)
    hub = Hub(store, assistant, redis, settings, titles, usage, metrics=metrics)
    await hub.start_background()
    try:
        yield Replica(
            settings, store, hub, Turns(store, hub, settings, Limits(redis, settings)), metrics
        )
    finally:
        await hub.stop()
        await titles.stop()
        await http.close()
        await redis.aclose()


@dataclass
class Rig:
    assistant: ScriptedAssistant
    settings: Settings

    @contextlib.asynccontextmanager
    async def replica(
        self, connect: Connect = connect_redis, **overrides: Any
    ) -> AsyncIterator[Replica]:
        async with replica(self.settings.model_copy(update=overrides), connect) as started:
            yield started

    async def ask(self, at: Replica, content: str = "hi") -> tuple[Claim, Turn, ScriptedReply]:
        """A new session's first turn on `at`, and its request to assistant, unanswered."""
        claim = await new_session(at)
        turn = await at.turns.send(claim, content, None, CLIENT)
        return claim, turn, await self.assistant.next_reply()


async def new_session(at: Replica, system_prompt: str = "") -> Claim:
    meta, token = await at.store.create_session("test", system_prompt, "")
    return Claim.for_token(meta.session_id, token)


# Seconds a test waits for a reply's events before failing instead of hanging.
EVENTS_TIMEOUT = 10.0


async def events_until_end(events: Events | None) -> list[Event]:
    """Every event up to and including the terminal one (heartbeats left out)."""
    out: list[Event] = []
    if events is None:
        return out
    async with asyncio.timeout(EVENTS_TIMEOUT):
        async for batch in events:
            out.extend(batch or ())
            if out and out[-1].terminal:
                break
    return out


async def next_events(events: Events | None) -> list[Event]:
    """The next batch of events (heartbeats skipped)."""
    assert events is not None, "the turn has no events to follow"
    async with asyncio.timeout(EVENTS_TIMEOUT):
        while True:
            batch = await anext(events)
            if batch:
                return batch


def data(event: Event) -> dict[str, Any]:
    parsed: dict[str, Any] = orjson.loads(event.data)
    return parsed


def text_of(events: list[Event]) -> str:
    return "".join(data(e)["text"] for e in events if e.name == "delta")
