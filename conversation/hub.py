"""This replica's replies being written: the slots they take (`MAX_ACTIVE_GENERATIONS`), the
`Generation` task of each, the heartbeats of their streams, cancels sent by other replicas, and
the drain at shutdown."""

from __future__ import annotations

import asyncio
import logging

from redis.exceptions import RedisError

from common.protocol import ChatMessage
from conversation.assistant_client import AssistantClient
from conversation.config import Settings
from conversation.generation import Generation
from conversation.limits import Admission
from conversation.metrics import ConversationMetrics
from conversation.models import StoredMessage
from conversation.redis_client import RedisClient
from conversation.store import Store
from conversation.titles import Titles
from conversation.usage import UsageBook

log = logging.getLogger(__name__)


class Hub:
    """This replica's generations, their local clients, and cancels from other replicas."""

    def __init__(
        self,
        store: Store,
        assistant: AssistantClient,
        redis: RedisClient,
        settings: Settings,
        titles: Titles,
        usage: UsageBook,
        metrics: ConversationMetrics | None = None,
    ) -> None:
        self.metrics = metrics or ConversationMetrics()
        self.store = store
        self.assistant = assistant
        self.titles = titles
        self.usage = usage
        self.redis = redis
        self.settings = settings
        self._active: dict[tuple[str, str], Generation] = {}
        self._background: list[asyncio.Task[None]] = []
        # Slots taken: generations running plus turns admitted but not started yet (their
        # Redis round trip is in flight). Counted before that await, so a burst cannot
        # overshoot MAX_ACTIVE_GENERATIONS.
        self._slots = 0
        self.draining = False  # the process is shutting down: no new turns

    @property
    def full(self) -> bool:
        return self._slots >= self.settings.max_active_generations

    def reserve(self) -> bool:
        """Take a slot for a turn about to start, or False when this replica is full or is
        shutting down."""
        if self.full or self.draining:
            return False
        self._slots += 1
        return True

    def release(self) -> None:
        """Give back a reserved slot whose turn did not start a generation."""
        self._slots -= 1

    def start(
        self,
        session_id: str,
        reply: StoredMessage,
        context: list[ChatMessage],
        admission: Admission,
        title: bool = False,
    ) -> Generation:
        """Start a generation in a slot taken with `reserve()`; the slot ends with it, and
        so do the client's slots `admission` holds. `title`: a first reply, whose chat gets
        a title once it is written."""
        gen = Generation(
            session_id,
            reply,
            context,
            admission,
            store=self.store,
            assistant=self.assistant,
            settings=self.settings,
            metrics=self.metrics,
            usage=self.usage,
            titles=self.titles,
            title=title,
        )
        key = (session_id, reply.id)
        self._active[key] = gen
        self.metrics.active.inc()

        def ended() -> None:
            self._active.pop(key, None)
            self._slots -= 1
            self.metrics.active.dec()

        gen.begin(ended)
        return gen

    def get(self, session_id: str, message_id: str) -> Generation | None:
        return self._active.get((session_id, message_id))

    def cancel_local(self, session_id: str, message_id: str) -> Generation | None:
        gen = self.get(session_id, message_id)
        if gen is not None:
            gen.cancel()
        return gen

    async def start_background(self) -> None:
        self._background = [
            asyncio.create_task(self._heartbeats(), name="heartbeats"),
            asyncio.create_task(self._listen_for_cancels(), name="cancel-listener"),
        ]

    async def drain(self, grace: float) -> None:
        """Take no new turns, and let the replies being written finish, for up to `grace`
        seconds: a rolling restart then cuts no reply short (their clients, cut off by the
        server's shutdown, resume from Redis on another replica)."""
        self.draining = True
        tasks = [gen.task for gen in self._active.values() if gen.task is not None]
        if tasks and grace > 0:
            log.info("waiting up to %.0f s for %d replies to finish", grace, len(tasks))
            await asyncio.wait(tasks, timeout=grace)

    async def stop(self) -> None:
        for task in self._background:
            task.cancel()
        replies = [gen.abandon() for gen in list(self._active.values())]
        pending = [t for t in [*self._background, *replies] if t is not None]
        await asyncio.gather(*pending, return_exceptions=True)

    async def _heartbeats(self) -> None:
        """Every idle stream needs a byte now and then to survive proxies' read timeouts."""
        while True:
            await asyncio.sleep(self.settings.heartbeat_interval)
            for gen in self._active.values():
                gen.heartbeat()

    async def _listen_for_cancels(self) -> None:
        while True:
            try:
                async with self.redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self.store.cancel_channel)
                    async for message in pubsub.listen():
                        sid, _, mid = str(message["data"]).partition(" ")
                        self.cancel_local(sid, mid)
            except RedisError:
                log.warning("cancel listener lost Redis; reconnecting", exc_info=True)
                await asyncio.sleep(1)  # back off before reconnecting to a failing Redis
