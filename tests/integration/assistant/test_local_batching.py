"""The real embedded SmolLM2 shared by several chats: decoded together, a fair queue beyond
(fair between users: the requests' `user`).

Four slots, two queue places (see the `parallel_assistant` fixture). A `LONG` request
keeps its slot busy far longer than any test takes; the test frees it by closing the
connection, as a person leaving the page does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import orjson
import pytest

from assistant.api.chat import with_system_prompt
from assistant.config import Settings
from assistant.providers.base import Finish, GenerationParams
from assistant.providers.local import LocalProvider
from common.protocol import ChatMessage
from tests.integration.assistant.helpers import chat
from tests.integration.assistant.test_local_model import LONG, QUESTION, idle, local_stats
from tests.support.servers import Server, wait_until
from tests.support.sse import iter_events

pytestmark = pytest.mark.model

SLOTS = 4
PROMPTS = [
    "What is the capital of France?",
    "Count from 1 to 30.",
    "Name three colors.",
    "Write a haiku about rain.",
]
GREEDY_TOKENS = 80


class Chat:
    """One streamed request, read event by event."""

    def __init__(self, stack: ExitStack, client: httpx.Client, body: dict[str, Any]) -> None:
        self.response = stack.enter_context(
            client.stream("POST", "/v1/chat/completions", json=body)
        )
        assert self.response.status_code == 200, self.response.read()
        self.events = iter_events(self.response.iter_lines())
        self.places: list[int] = []
        self.text = ""

    def next(self) -> Any:
        return orjson.loads(next(self.events).data)

    def first_text(self) -> str:
        """Read until the first token, noting each queue place told on the way."""
        while True:
            chunk = self.next()
            if "queue" in chunk:
                self.places.append(chunk["queue"]["position"])
            elif chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                text: str = chunk["choices"][0]["delta"]["content"]
                self.text += text
                return text

    def place(self) -> int:
        """The next event must be a queue place."""
        chunk = self.next()
        assert "queue" in chunk and chunk["choices"] == [], chunk
        position: int = chunk["queue"]["position"]
        self.places.append(position)
        return position

    def close(self) -> None:
        self.response.close()


@pytest.fixture
def client(parallel_assistant: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=parallel_assistant.url, timeout=60) as session:
        yield session
    idle(parallel_assistant)


def fill_slots(stack: ExitStack, client: httpx.Client) -> list[Chat]:
    chats = [Chat(stack, client, LONG) for _ in range(SLOTS)]
    for c in chats:
        c.first_text()
    return chats


def test_four_chats_progress_together(client: httpx.Client, parallel_assistant: Server) -> None:
    before = local_stats(parallel_assistant)
    with ExitStack() as stack:
        chats = fill_slots(stack, client)
        for _ in range(2):
            for c in chats:
                c.first_text()
        stats = local_stats(parallel_assistant)
        assert stats["active"] == SLOTS and stats["queued"] == 0, stats
        assert stats["completed"] == before["completed"], "no chat ended before all had tokens"
        for c in chats:
            assert c.places == [], "a chat with a free slot is never told a queue place"
            assert "hello" in c.text.lower()


def test_cancelling_a_chat_lets_the_first_waiting_one_start(
    client: httpx.Client, parallel_assistant: Server
) -> None:
    before = local_stats(parallel_assistant)
    with ExitStack() as stack:
        chats = fill_slots(stack, client)
        fifth = Chat(stack, client, LONG)
        assert fifth.place() == 0
        chats[0].close()
        assert fifth.first_text()
        wait_until(
            lambda: local_stats(parallel_assistant)["cancelled"] > before["cancelled"],
            10,
            "the closed chat to be counted as cancelled",
        )
        assert local_stats(parallel_assistant)["active"] == SLOTS


def test_queue_places_are_told_and_decrease(
    client: httpx.Client, parallel_assistant: Server
) -> None:
    with ExitStack() as stack:
        chats = fill_slots(stack, client)
        waiting = [Chat(stack, client, LONG) for _ in range(2)]
        assert [w.place() for w in waiting] == [0, 1]
        # A waiting chat that leaves gives its place to the one behind it.
        waiting[0].close()
        assert waiting[1].place() == 0
        chats[0].close()
        waiting[1].first_text()
        assert waiting[1].places == [1, 0]


def test_a_user_holding_every_slot_waits_behind_another_users_first_request(
    client: httpx.Client, parallel_assistant: Server
) -> None:
    with ExitStack() as stack:
        busy = [Chat(stack, client, {**LONG, "user": "a"}) for _ in range(SLOTS)]
        for c in busy:
            c.first_text()
        more = Chat(stack, client, {**LONG, "user": "a"})
        assert more.place() == 0
        other = Chat(stack, client, {**LONG, "user": "b"})
        assert other.place() == 0, "b holds nothing: its request goes ahead of a's fifth"
        assert more.place() == 1
        busy[0].close()
        assert other.first_text()
        assert more.place() == 0
        assert local_stats(parallel_assistant)["active"] == SLOTS


def test_a_full_queue_answers_503(client: httpx.Client, parallel_assistant: Server) -> None:
    with ExitStack() as stack:
        # Kept referenced: a collected reader closes its connection, freeing its slot.
        chats = fill_slots(stack, client)
        waiting = [Chat(stack, client, LONG) for _ in range(2)]
        assert [w.place() for w in waiting] == [0, 1]
        refused = chat(parallel_assistant.url, {"messages": QUESTION, "max_tokens": 4})
        assert local_stats(parallel_assistant)["active"] == len(chats)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "2"
        assert "LOCAL_QUEUE_SIZE=2" in refused.json()["error"]["message"]


# --- greedy replies are the same batched or not --------------------------------------------


async def batched_reply(provider: LocalProvider, question: str) -> str:
    messages = with_system_prompt([ChatMessage(role="user", content=question)], provider.settings)
    stream = await provider.open(
        messages, GenerationParams(max_tokens=GREEDY_TOKENS, temperature=0)
    )
    parts: list[str] = []
    async for item in stream:
        if isinstance(item, list):
            parts.extend(item)
        assert not isinstance(item, Finish) or item.reason in ("stop", "length")
    return "".join(parts)


def unbatched_replies(provider: LocalProvider) -> list[str]:
    """llama-cpp-python's one-sequence `Llama.generate`, which the service used before."""
    from llama_cpp import llama_vocab_is_eog

    llm = provider.unbatched_llama()
    replies = []
    try:
        for question in PROMPTS:
            messages = with_system_prompt(
                [ChatMessage(role="user", content=question)], provider.settings
            )
            prompt = provider._prompt([{"role": m.role, "content": m.content} for m in messages])
            tokens: list[int] = []
            for token in llm.generate(prompt, temp=0):
                if llama_vocab_is_eog(llm._model.vocab, token) or len(tokens) == GREEDY_TOKENS:
                    break
                tokens.append(token)
            replies.append(llm.detokenize(tokens).decode())
    finally:
        llm.close()
    return replies


def test_greedy_replies_are_the_unbatched_ones() -> None:
    async def compare() -> None:
        provider = LocalProvider(Settings(local_parallel=SLOTS))
        await provider.start()
        try:
            expected = unbatched_replies(provider)
            alone = await batched_reply(provider, PROMPTS[0])
            together = await asyncio.gather(*(batched_reply(provider, q) for q in PROMPTS))
        finally:
            await provider.close()
        assert alone == expected[0]
        assert together == expected

    asyncio.run(compare())
