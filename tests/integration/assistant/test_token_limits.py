"""Every request upstream carries max_tokens, and a reply cut by it says "length".

The caller's max_tokens goes upstream capped by the provider's setting (OPENAI_MAX_TOKENS,
HF_MAX_NEW_TOKENS); with none, the setting itself. The fakes record each request and cut
their reply at its max_tokens, as real servers do.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.assistant.conftest import HF_MAX_NEW_TOKENS, OPENAI_MAX_TOKENS
from tests.integration.assistant.helpers import USER, chat, stream_payloads, streamed_text
from tests.support.fake_control import FakeControl
from tests.support.servers import Server

LONG = [f"w{i} " for i in range(400)]


def asking(max_tokens: int | None) -> dict[str, Any]:
    return (
        {"messages": USER} if max_tokens is None else {"messages": USER, "max_tokens": max_tokens}
    )


def finish_of(url: str, body: dict[str, Any], stream: bool) -> tuple[str, str]:
    """The reply's text and finish reason, streamed or whole."""
    if stream:
        status, payloads = stream_payloads(url, body)
        assert status == 200 and payloads[-1] == "[DONE]", payloads
        reasons = [c["finish_reason"] for p in payloads[:-1] for c in p["choices"]]
        return streamed_text(payloads), next(r for r in reversed(reasons) if r)
    response = chat(url, body)
    assert response.status_code == 200, response.text
    choice = response.json()["choices"][0]
    return choice["message"]["content"], choice["finish_reason"]


@pytest.mark.parametrize(
    ("asked", "sent"),
    [(None, OPENAI_MAX_TOKENS), (7, 7), (OPENAI_MAX_TOKENS + 500, OPENAI_MAX_TOKENS)],
)
def test_openai_requests_carry_max_tokens(
    assistant: Server, upstream: FakeControl, asked: int | None, sent: int
) -> None:
    assert chat(assistant.url, asking(asked)).status_code == 200
    assert upstream.requests()[0]["body"]["max_tokens"] == sent


@pytest.mark.parametrize("stream", [False, True])
def test_openai_length_reaches_the_client(
    assistant: Server, upstream: FakeControl, stream: bool
) -> None:
    upstream.script({"tokens": LONG})
    text, reason = finish_of(assistant.url, {"messages": USER, "max_tokens": 3}, stream)
    assert (text, reason) == ("w0 w1 w2 ", "length")


@pytest.mark.parametrize("stream", [False, True])
def test_openai_length_from_the_setting_reaches_the_client(
    assistant: Server, upstream: FakeControl, stream: bool
) -> None:
    upstream.script({"tokens": LONG})
    text, reason = finish_of(assistant.url, {"messages": USER}, stream)
    assert reason == "length" and text == "".join(LONG[:OPENAI_MAX_TOKENS])


@pytest.mark.parametrize(("asked", "sent"), [(None, HF_MAX_NEW_TOKENS), (500, HF_MAX_NEW_TOKENS)])
def test_hf_text_generation_carries_max_new_tokens(
    hf_assistant: Server, hf_upstream: FakeControl, asked: int | None, sent: int
) -> None:
    assert chat(hf_assistant.url, asking(asked)).status_code == 200
    assert hf_upstream.requests()[-1]["body"]["parameters"]["max_new_tokens"] == sent


@pytest.mark.parametrize("stream", [False, True])
def test_hf_text_generation_length_reaches_the_client(
    hf_assistant: Server, hf_upstream: FakeControl, stream: bool
) -> None:
    text, reason = finish_of(hf_assistant.url, {"messages": USER, "max_tokens": 2}, stream)
    assert (text, reason) == ("Hello from", "length")


def test_hf_chat_carries_max_tokens(
    hf_chat_assistant: Server, hf_chat_upstream: FakeControl
) -> None:
    assert chat(hf_chat_assistant.url, {"messages": USER}).status_code == 200
    assert hf_chat_upstream.requests()[0]["body"]["max_tokens"] == HF_MAX_NEW_TOKENS


@pytest.mark.parametrize("stream", [False, True])
def test_hf_chat_length_reaches_the_client(
    hf_chat_assistant: Server, hf_chat_upstream: FakeControl, stream: bool
) -> None:
    hf_chat_upstream.script({"tokens": LONG})
    text, reason = finish_of(hf_chat_assistant.url, {"messages": USER, "max_tokens": 2}, stream)
    assert (text, reason) == ("w0 w1 ", "length")
