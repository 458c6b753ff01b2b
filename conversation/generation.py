"""Reply generation: a task per reply, independent of the HTTP connection that asked for it.

Each delta from assistant goes at once, in process, to the clients connected to this replica
(one queue each). Separately and batched, the new text is appended to the reply's Redis
Stream, for resume and for the other replicas (when: `conversation/flush_schedule.py`). The
finished reply goes to the history; only then do local clients get `done`, so a client that
reads the session right after `done` sees the stored reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

from redis.exceptions import RedisError

from common.protocol import ChatMessage, Usage
from conversation.assistant_client import AssistantCallError, AssistantClient, Queued
from conversation.config import Settings
from conversation.events import (
    INTERRUPTED,
    Event,
    delta_event,
    queued_event,
    terminal_event,
)
from conversation.flush_schedule import FlushSchedule
from conversation.limits import Admission
from conversation.metrics import ConversationMetrics
from conversation.models import ErrorInfo, StoredMessage
from conversation.slim_queues import Flag, SlimQueue
from conversation.store import Store
from conversation.titles import Titles
from conversation.usage import Spent, UsageBook, chat_identity, spent

log = logging.getLogger(__name__)

# Seconds between attempts to store a finished reply while Redis refuses: doubling up to the
# maximum, so a short hiccup costs a tenth of a second and a long outage few attempts.
RETRY_FIRST_PAUSE = 0.1
RETRY_MAX_PAUSE = 2.0

# A queue item is the events of one read from assistant, or None for a heartbeat.
Outbox = SlimQueue[list[Event] | None]


class Generation:
    """One reply being written: asks assistant, fans the text out, streams and stores it."""

    def __init__(
        self,
        session_id: str,
        reply: StoredMessage,
        context: list[ChatMessage],
        admission: Admission,
        *,
        store: Store,
        assistant: AssistantClient,
        settings: Settings,
        metrics: ConversationMetrics,
        usage: UsageBook,
        titles: Titles,
        title: bool = False,
    ) -> None:
        self.session_id = session_id
        self._reply = reply
        self._context = context
        self._admission = admission  # the client's slots this reply holds
        self._store = store
        self._assistant = assistant
        self._settings = settings
        self._metrics = metrics
        self._usage = usage
        self._titles = titles
        # For usage when assistant reports none, and for the title after a first reply.
        self._prompt_bytes = sum(len(m.content.encode()) for m in context)
        self._question = context[-1].content if title and context else None
        # A continued reply goes on from its text, which its stream already holds.
        self._parts: list[str] = [reply.content] if reply.content else []
        self._length = len(reply.content)
        self._subscribers: set[Outbox] = set()
        self._terminal: Event | None = None
        self._cancel_requested = False
        self._stopping = False  # the process is stopping: no more waiting on Redis
        self._unflushed: list[str] = []
        self._flushed = self._length
        self._dirty = Flag()
        self._closing = Flag()
        self._task: asyncio.Task[None] | None = None
        self._first_text_at: float | None = None
        self._deltas = 0  # the token count, for a model that reports no usage
        # The latest place in the model's queue, until the first text (for clients joining
        # here), and the write of the places to the stream (for those resuming elsewhere).
        self._queued: Event | None = None
        self._queue_write: asyncio.Task[None] | None = None

    @property
    def id(self) -> str:
        return self._reply.id

    @property
    def reply(self) -> StoredMessage:
        """The reply as it started, then as it was stored once finished."""
        return self._reply

    @property
    def length(self) -> int:
        """Characters of reply text so far: the id of the latest event."""
        return self._length

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The task writing the reply, once begun."""
        return self._task

    def begin(self, ended: Callable[[], None]) -> None:
        """Write the reply in a task of its own; `ended` is called when it has ended."""

        async def run() -> None:
            try:
                await self.run()
            finally:
                ended()

        self._task = asyncio.create_task(run(), name=f"reply-{self.id}")

    async def finished(self) -> StoredMessage:
        """Wait for the reply to end; the reply as stored."""
        if self._task is not None:
            await asyncio.wait({self._task})
        return self._reply

    def heartbeat(self) -> None:
        """A heartbeat for each client following the reply."""
        for outbox in self._subscribers:
            outbox.put_nowait(None)

    def subscribe(self, offset: int = 0) -> Outbox:
        """A queue that gets the text after `offset`, then every event until the end."""
        outbox: Outbox = SlimQueue()
        if offset < self._length:
            outbox.put_nowait([delta_event("".join(self._parts)[offset:], self._length)])
        if self._queued is not None:
            outbox.put_nowait([self._queued])
        if self._terminal is not None:
            outbox.put_nowait([self._terminal])
        else:
            self._subscribers.add(outbox)
        return outbox

    def unsubscribe(self, outbox: Outbox) -> None:
        self._subscribers.discard(outbox)

    def cancel(self) -> None:
        """Stop at the client's request: the reply ends `cancelled`."""
        if self._task is not None and not self._task.done():
            self._cancel_requested = True
            self._task.cancel()

    def abandon(self) -> asyncio.Task[None] | None:
        """The process is stopping: the reply ends `interrupted`, stored if Redis takes it at
        once (without waiting for Redis to come back). Returns the task to wait for."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
        return self._task

    def _take_context(self) -> list[ChatMessage]:
        """The context, handed over once: the reply does not keep a long history alive."""
        context, self._context = self._context, []
        return context

    def _publish(self, events: list[Event]) -> None:
        for outbox in self._subscribers:
            outbox.put_nowait(events)

    def _on_deltas(self, texts: list[str]) -> None:
        """Texts read together from assistant: each still its own event, with its offset."""
        if self._first_text_at is None:
            self._first_text_at = time.perf_counter()
            self._queued = None
        self._deltas += len(texts)
        self._parts.extend(texts)
        self._unflushed.extend(texts)
        events = []
        for text in texts:
            self._length += len(text)
            events.append(delta_event(text, self._length))
        self._publish(events)
        self._dirty.set()

    def _on_queued(self, ahead: int) -> None:
        """A place in the model's queue: to the clients here at once; to the stream in the
        order told, off the reading task (Redis being slow must not hold up the reply)."""
        event = queued_event(ahead, self._length)
        if self._queued is not None and event.data == self._queued.data:
            return  # the same place again: assistant keeps its connection busy, no news
        self._queued = event
        self._publish([event])
        write = self._write_place(self._queue_write, self._length, ahead)
        self._queue_write = asyncio.create_task(write)

    async def _write_place(
        self, before: asyncio.Task[None] | None, length: int, ahead: int
    ) -> None:
        if before is not None:
            await before
        try:
            # Dropped by Redis once the text is written (its entry id would come first).
            await self._store.queued(self.session_id, self.id, length, ahead)
        except RedisError:
            log.warning("could not write reply %s's place in the queue", self.id, exc_info=True)

    async def run(self) -> None:
        began = time.perf_counter()
        flusher = asyncio.create_task(self._flush_loop())
        model: str | None = None
        usage: Usage | None = None
        error: ErrorInfo | None = None
        status: str = "complete"
        try:
            stream = self._assistant.stream(
                self._take_context(), self._reply.model, self._fair_share_user()
            )
            async for item in stream:
                if isinstance(item, list):
                    self._on_deltas(item)
                elif isinstance(item, Queued):
                    self._on_queued(item.ahead)
                else:
                    usage, model = item.usage, item.model
                    if item.finish_reason == "length":
                        status = "length"
        except asyncio.CancelledError:
            if self._cancel_requested:
                status = "cancelled"
            else:
                status, error = (
                    "interrupted",
                    ErrorInfo(code=INTERRUPTED[0], message=INTERRUPTED[1]),
                )
        except AssistantCallError as exc:
            status, error = "error", ErrorInfo(code=exc.code, message=exc.message)
        except Exception:
            log.exception("reply %s failed", self.id)
            status = "error"
            error = ErrorInfo(
                code="internal_error",
                message="The conversation service failed while writing this reply; "
                "the partial reply is kept. Regenerate it to try again.",
            )
        if self._queue_write is not None:
            await self._queue_write
        self._closing.set()
        self._dirty.set()
        await flusher
        await self._finish(status, usage, error, model)
        self._metrics.reply_ended(
            status,
            time.perf_counter() - began,
            None if self._first_text_at is None else self._first_text_at - began,
            model or self._reply.model or self._settings.assistant_model or "unknown",
            usage.completion_tokens if usage else self._deltas,
            error.code if error else None,
        )

    async def _finish(
        self, status: str, usage: Usage | None, error: ErrorInfo | None, model: str | None
    ) -> None:
        final = self._reply.model_copy(
            update={
                "content": "".join(self._parts),
                "status": status,
                "usage": usage,
                "tokens": usage.completion_tokens if usage else None,
                "error": error,
                "model": model or self._reply.model,
            }
        )
        # The client's slots are free, and the reply's tokens counted, before anyone hears
        # `done`: a client that sends its next message at once finds its slot free.
        cost = spent(usage, final.content, self._prompt_bytes, self._first_text_at is not None)
        await asyncio.gather(
            self._store_reply(final),
            self._admission.release(cost.completion_tokens),
            self._count_usage(final.model, cost),
        )
        self._reply = final
        self._terminal = terminal_event(final)
        self._publish([self._terminal])
        self._subscribers.clear()
        if self._question is not None and status in ("complete", "length") and final.content:
            self._titles.start(self.session_id, final.model, self._question, final.content)

    def _fair_share_user(self) -> str | None:
        """Who asked, as assistant shares its embedded model between users: the client's
        address identity (a digest), the one identity a client cannot multiply by opening
        sessions or dropping cookies, as the per-address limits count it."""
        client = self._admission.client
        return client.ip.digest if client else None

    async def _count_usage(self, model: str | None, cost: Spent) -> None:
        """The reply's tokens in the chat's and the client's usage; a failure is only logged
        (the reply matters more than its bookkeeping)."""
        client = self._admission.client
        who = [chat_identity(self.session_id), *(client.others if client else ())]
        try:
            await self._usage.record(who, model, cost)
        except RedisError:
            log.warning("could not count the usage of reply %s", self.id, exc_info=True)

    async def _store_reply(self, final: StoredMessage) -> None:
        """Write the finished reply to the history, trying again while Redis refuses.

        A restart or failover takes seconds; without retries every reply finishing then
        would keep only the text its stream had (up to a second behind: flush_schedule.py).
        Not while the process stops: its replies are recovered as interrupted anyway.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settings.reply_store_retry_timeout
        pause = RETRY_FIRST_PAUSE
        while True:
            try:
                await self._store.finish(self.session_id, final, self._flushed)
                return
            except RedisError as exc:
                if self._stopping or loop.time() + pause > deadline:
                    log.exception("could not store reply %s; it will show as interrupted", self.id)
                    return
                log.warning(
                    "could not store reply %s yet (%r); again in %.1f s", self.id, exc, pause
                )
            await asyncio.sleep(pause)
            pause = min(pause * 2, RETRY_MAX_PAUSE)

    async def _flush_loop(self) -> None:
        """Append new text to the reply's Redis Stream and renew the generation's lease, when
        `FlushSchedule` says (why then: conversation/flush_schedule.py)."""
        loop = asyncio.get_running_loop()
        schedule = FlushSchedule.start(self._settings, loop.time())
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(schedule.renew_due):
                    await self._dirty.wait()
            if self._closing.is_set():
                return
            self._dirty.clear()
            write_at = schedule.next_write(loop.time(), bool(self._unflushed))
            if write_at is None:
                continue
            if write_at > loop.time():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout_at(write_at):
                        await self._closing.wait()
            if self._closing.is_set():
                return  # the final write carries the rest
            now = loop.time()
            text, end = "".join(self._unflushed), self._length
            self._unflushed.clear()
            write = schedule.plan(now, bool(text))
            try:
                flushed = self._store.flush(
                    self.session_id, self.id, end, text, write.expire, write.renew
                )
                if write.renew:  # the client's slots too, on their own connection meanwhile
                    watched, _ = await asyncio.gather(flushed, self._admission.renew())
                else:
                    watched = await flushed
            except RedisError:
                # The text stays in memory (the final write carries whatever was not stored).
                self._unflushed.insert(0, text)
                schedule.failed(now, loop.time())
                log.warning("stream write for reply %s failed", self.id, exc_info=True)
                continue
            self._flushed = end
            schedule.written(write, now, loop.time(), watched)


async def outbox_events(gen: Generation, outbox: Outbox) -> AsyncIterator[list[Event] | None]:
    """Drain a subscriber's queue until the reply's terminal event.

    Whatever has piled up in the queue (its client was slower than the reply for a moment)
    comes out as one batch, which the client's connection sends in one write.
    """
    try:
        while True:
            batch = await outbox.get()
            if batch is None:
                yield None
                continue
            if not batch[-1].terminal:  # nothing is published after the terminal event
                for waiting in outbox.drain():
                    if waiting is not None:  # a heartbeat behind events has nothing to add
                        batch = batch + waiting  # never extend: the list is shared
            yield batch
            if batch[-1].terminal:
                return
    finally:
        gen.unsubscribe(outbox)
