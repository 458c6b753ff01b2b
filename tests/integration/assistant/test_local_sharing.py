"""The real embedded SmolLM2: warmed up before it is ready, the prompts' shared start read
once, and a waiting request told its place again while it waits.

The provider runs in the test's process (as in test_local_batching's greedy comparison,
which also covers the copied cells: its chats at once start from them).
"""

from __future__ import annotations

import asyncio

import pytest

from assistant.api.chat import with_system_prompt
from assistant.config import Settings
from assistant.providers.base import Finish, GenerationParams, Queued, TokenStream
from assistant.providers.local import LocalProvider
from assistant.providers.local_batch import common_prefix
from common.protocol import ChatMessage
from tests.integration.assistant.test_local_batching import PROMPTS

pytestmark = pytest.mark.model

# Well beyond any reply here: a reply that ends early would free its slot.
LONG_TOKENS = 1000
LONG_QUESTION = "Repeat the word hello 1000 times."
WAIT = 30.0


async def started(settings: Settings) -> LocalProvider:
    provider = LocalProvider(settings)
    await provider.start()
    return provider


def messages(provider: LocalProvider, question: str) -> list[ChatMessage]:
    return with_system_prompt([ChatMessage(role="user", content=question)], provider.settings)


def prompt(provider: LocalProvider, question: str) -> list[int]:
    return provider._prompt(
        [{"role": m.role, "content": m.content} for m in messages(provider, question)]
    )


async def ask(provider: LocalProvider, question: str, max_tokens: int) -> TokenStream:
    params = GenerationParams(max_tokens=max_tokens, temperature=0)
    return await provider.open(messages(provider, question), params)


async def reply(provider: LocalProvider, question: str) -> None:
    async for item in await ask(provider, question, 4):
        assert not isinstance(item, Finish) or item.reason in ("stop", "length")


def test_the_model_is_warmed_up_before_it_is_ready() -> None:
    async def check() -> None:
        provider = await started(Settings(local_parallel=2))
        try:
            stats = provider.stats()
            assert provider.ready
            # A prompt was read and a token decoded before any chat, and no chat was counted.
            assert stats["prompt_tokens_read"] > 0
            assert stats["completed"] == 0 and not stats["busy"]
        finally:
            await provider.close()

    asyncio.run(check())


def test_chats_at_once_read_the_shared_start_of_their_prompts_only_once() -> None:
    async def check() -> None:
        provider = await started(Settings(local_parallel=len(PROMPTS)))
        try:
            prompts = [prompt(provider, q) for q in PROMPTS]
            shared = common_prefix(prompts[0], prompts[1])
            assert shared > 0, "the template and the system prompt start every prompt"
            before = provider.stats()
            await asyncio.gather(*(reply(provider, q) for q in PROMPTS))
            after = provider.stats()
        finally:
            await provider.close()
        # The warm-up left the shared start in one slot; the other slots copied its cells.
        assert after["prompt_tokens_reused"] - before["prompt_tokens_reused"] == shared * len(
            PROMPTS
        )
        assert after["prompt_tokens_read"] - before["prompt_tokens_read"] == sum(
            len(p) - shared for p in prompts
        )

    asyncio.run(check())


def test_a_waiting_request_is_told_its_place_again_while_it_waits() -> None:
    async def check() -> None:
        settings = Settings(local_parallel=1, local_queue_size=1, local_queue_notice_seconds=0.2)
        provider = await started(settings)
        try:
            busy = await ask(provider, LONG_QUESTION, LONG_TOKENS)
            first = await anext(busy)
            assert isinstance(first, list), first
            waiting = await ask(provider, PROMPTS[0], 4)
            async with asyncio.timeout(WAIT):  # fails, rather than hangs, without repeats
                told = [await anext(waiting) for _ in range(3)]
            assert told == [Queued(0)] * 3, "the place at once, then again while unchanged"
            await busy.aclose()
            rest = [item async for item in waiting]
        finally:
            await provider.close()
        assert isinstance(rest[-1], Finish)
        assert any(isinstance(item, list) for item in rest), "the text once the slot is free"

    asyncio.run(check())
