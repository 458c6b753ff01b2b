"""The official `openai` client, pointed at assistant, works unchanged."""

from __future__ import annotations

import openai
import pytest

from tests.support.fake_control import FakeControl
from tests.support.servers import Server


def client_for(server: Server, api_key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=api_key, max_retries=0, timeout=30)


def test_openai_client_non_streaming(assistant: Server, upstream: FakeControl) -> None:
    with client_for(assistant) as client:
        completion = client.chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": "hi client"}]
        )
    assert completion.choices[0].message.content == "Echo: hi client"
    assert completion.choices[0].message.role == "assistant"
    assert completion.usage is not None and completion.usage.total_tokens > 0


def test_openai_client_streaming_with_usage(assistant: Server, upstream: FakeControl) -> None:
    with client_for(assistant) as client:
        stream = client.chat.completions.create(
            model="fake-model",
            messages=[{"role": "user", "content": "stream me"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: stream me"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3


def test_openai_client_lists_models(assistant: Server) -> None:
    with client_for(assistant) as client:
        assert [m.id for m in client.models.list()] == ["fake-model"]


def test_openai_client_sees_rate_limit(assistant: Server, upstream: FakeControl) -> None:
    upstream.script({"status": 429, "retry_after": "9", "message": "slow down"})
    with client_for(assistant) as client, pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "9"
    assert "rate limiting" in caught.value.message


def test_openai_client_sees_mid_stream_failure(assistant: Server, upstream: FakeControl) -> None:
    upstream.script({"error_after": 1, "message": "upstream exploded"})
    with client_for(assistant) as client:
        stream = client.chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": "a b c"}], stream=True
        )
        with pytest.raises(openai.APIError) as caught:
            for _ in stream:
                pass
    assert caught.value.message == "The openai provider failed: it reported an error."


def test_openai_client_with_the_shared_secret(
    secured_assistant: Server, upstream: FakeControl
) -> None:
    with client_for(secured_assistant, api_key="s3cret") as client:
        completion = client.chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": "let me in"}]
        )
    assert completion.choices[0].message.content == "Echo: let me in"
    with (
        client_for(secured_assistant, api_key="wrong") as client,
        pytest.raises(openai.AuthenticationError),
    ):
        client.chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": "let me in"}]
        )
