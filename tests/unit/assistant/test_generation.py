"""The idle timeout of `generation.follow`: it bounds the upstream's silence, not the caller's.

The upstream is scripted by the test: its tokens are there at once, or it falls silent for
good. Nothing depends on how fast the machine is: a token that is there is never late, and a
silence has no end the timeout could race.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest

from assistant import generation
from assistant.errors import AssistantError
from assistant.providers.base import (
    Finish,
    GenerationParams,
    Provider,
    Queued,
    StreamItem,
    TokenStream,
)
from common.protocol import ChatMessage

IDLE = 0.05
POLICY = generation.Policy(first_token_timeout=1, idle_timeout=IDLE, attempts=1, backoff=0)
# For the test of a cancel: no timeout may fire while the caller is cancelled.
PATIENT = generation.Policy(first_token_timeout=60, idle_timeout=60, attempts=1, backoff=0)


class Scripted(Provider):
    """Yields `tokens` at once; then a Finish, or, `silent`, nothing ever again.

    `queued`: first a queue place, then nothing until the test sets `admitted`.
    """

    name = "scripted"

    def __init__(self, tokens: int, silent: bool = False, queued: bool = False) -> None:
        super().__init__("scripted-model")
        self.tokens, self.silent, self.queued = tokens, silent, queued
        self.fell_silent = asyncio.Event()
        self.waiting, self.admitted = asyncio.Event(), asyncio.Event()

    async def open(self, messages: list[ChatMessage], params: GenerationParams) -> TokenStream:
        return self._stream()

    async def _stream(self) -> AsyncGenerator[StreamItem, None]:
        if self.queued:
            yield Queued(0)
            self.waiting.set()
            await self.admitted.wait()
        for i in range(self.tokens):
            yield [f"t{i}"]
        if self.silent:
            self.fell_silent.set()
            await asyncio.Event().wait()  # an upstream that never sends again
        yield Finish("stop")


async def items(
    provider: Provider, policy: generation.Policy = POLICY, busy: float = 0
) -> list[StreamItem]:
    """Follow the stream; `busy`: seconds the caller spends on each item (its socket write)."""
    started = await generation.start(provider, [], GenerationParams(), policy)
    found = []
    async for item in generation.follow(provider, started, policy):
        found.append(item)
        if busy:
            await asyncio.sleep(busy)  # the caller's own work, not a wait for the upstream
    return found


async def test_a_slow_caller_is_not_an_idle_upstream() -> None:
    # Each token is there at once, however long the caller took with the one before.
    found = await items(Scripted(3), busy=IDLE * 2)
    assert found == [["t0"], ["t1"], ["t2"], Finish("stop")]


async def test_an_idle_upstream_ends_the_stream_with_a_timeout() -> None:
    with pytest.raises(AssistantError) as raised:
        await items(Scripted(2, silent=True))
    assert raised.value.status == 504


async def test_cancelling_the_caller_is_not_a_timeout() -> None:
    provider = Scripted(1, silent=True)
    task = asyncio.ensure_future(items(provider, PATIENT))
    await provider.fell_silent.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_wait_in_the_queue_is_not_an_idle_upstream() -> None:
    provider = Scripted(1, queued=True)
    task = asyncio.ensure_future(items(provider))
    await provider.waiting.wait()
    await asyncio.sleep(IDLE * 3)  # the replies ahead take longer than the idle timeout
    provider.admitted.set()
    assert await task == [Queued(0), ["t0"], Finish("stop")]


async def test_after_the_queue_an_idle_upstream_still_times_out() -> None:
    provider = Scripted(1, silent=True, queued=True)
    provider.admitted.set()
    with pytest.raises(AssistantError) as raised:
        await items(provider)
    assert raised.value.status == 504


async def test_a_whole_answer_leaves_the_queue_place_out() -> None:
    provider = Scripted(2, queued=True)
    provider.admitted.set()
    started = await generation.start(provider, [], GenerationParams(), POLICY)
    assert await generation.collect(provider, started, POLICY) == ("t0t1", Finish("stop"))
