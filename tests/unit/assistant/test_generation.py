"""The idle timeout of `generation.follow`: it bounds the upstream's silence, not the caller's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest

from assistant import generation
from assistant.errors import AssistantError
from assistant.providers.base import Finish, GenerationParams, Provider, StreamItem, TokenStream
from common.protocol import ChatMessage

POLICY = generation.Policy(first_token_timeout=1, idle_timeout=0.05, attempts=1, backoff=0)


class Scripted(Provider):
    """Yields each token after its delay, then a Finish."""

    name = "scripted"

    def __init__(self, delays: list[float]) -> None:
        super().__init__("scripted-model")
        self.delays = delays

    async def open(self, messages: list[ChatMessage], params: GenerationParams) -> TokenStream:
        return self._stream()

    async def _stream(self) -> AsyncGenerator[StreamItem, None]:
        for i, delay in enumerate(self.delays):
            await asyncio.sleep(delay)  # the upstream's pace, scripted
            yield [f"t{i}"]
        yield Finish("stop")


async def items(provider: Provider, caller_delay: float = 0) -> list[StreamItem]:
    started = await generation.start(provider, [], GenerationParams(), POLICY)
    found = []
    async for item in generation.follow(provider, started, POLICY):
        found.append(item)
        await asyncio.sleep(caller_delay)  # the caller's own work while the stream waits
    return found


async def test_a_slow_caller_is_not_an_idle_upstream() -> None:
    found = await items(Scripted([0, 0, 0]), caller_delay=0.1)
    assert found == [["t0"], ["t1"], ["t2"], Finish("stop")]


async def test_an_idle_upstream_ends_the_stream_with_a_timeout() -> None:
    with pytest.raises(AssistantError) as raised:
        await items(Scripted([0, 0.01, 0.2]))
    assert raised.value.status == 504


async def test_cancelling_the_caller_is_not_a_timeout() -> None:
    task = asyncio.ensure_future(items(Scripted([0, 10])))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
