"""Every way an upstream fails (refused, rate limited, erroring, stalling, dropping), as the
caller sees it: status code and message.

Before the first token a failure is an HTTP error (retried first when it may pass); after
it, the stream ends with an error event and no `[DONE]`. A caller that goes away cancels
the upstream request, which the fake records.
"""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from assistant.catalogue import single_provider
from assistant.config import Settings
from assistant.errors import AssistantError
from assistant.providers.openai_compatible import OpenAIProvider
from assistant.registry import build_upstream
from tests.integration.assistant.helpers import USER, chat, error_of, stream_payloads
from tests.support.fake_control import FakeControl
from tests.support.servers import Server
from tests.support.sse import iter_events

HANG = 60_000  # ms: far beyond the assistant's 1.5 s timeouts in these tests


@pytest.mark.parametrize("status", [401, 403])
def test_bad_upstream_credentials_are_502_naming_the_provider(
    assistant: Server, upstream: FakeControl, status: int
) -> None:
    upstream.script({"status": status, "message": "Incorrect API key provided"})
    response = chat(assistant.url, {"messages": USER})
    assert response.status_code == 502
    error = error_of(response)
    assert error["code"] == "upstream_auth_failed"
    assert error["message"].startswith("The openai provider rejected the assistant's credentials")
    assert len(upstream.requests()) == 1, "credentials failures are not retried"


def test_upstream_rate_limit_is_429_with_its_retry_after(
    assistant: Server, upstream: FakeControl
) -> None:
    upstream.script({"status": 429, "retry_after": "17", "message": "Rate limit reached"})
    response = chat(assistant.url, {"messages": USER, "stream": True})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "17"
    assert error_of(response) == {
        "message": "The openai provider is rate limiting requests; try again after Retry-After.",
        "type": "rate_limit_error",
        "code": "upstream_rate_limited",
    }
    assert len(upstream.requests()) == 1


def test_rate_limit_without_retry_after_gets_the_configured_one(
    assistant: Server, upstream: FakeControl
) -> None:
    upstream.script({"status": 429})
    response = chat(assistant.url, {"messages": USER})
    assert response.status_code == 429 and response.headers["retry-after"] == "3"


def test_a_rate_limit_naming_a_short_wait_is_retried_after_it(
    assistant: Server, upstream: FakeControl
) -> None:
    upstream.script({"status": 429, "retry_after": "1", "message": "Rate limit reached"})
    response = chat(assistant.url, {"messages": USER})
    assert response.status_code == 200
    assert [r["state"] for r in upstream.requests()] == ["failed", "completed"]


def test_unreachable_upstream_is_503(unreachable_assistant: Server) -> None:
    response = chat(unreachable_assistant.url, {"messages": USER})
    assert response.status_code == 503
    error = error_of(response)
    assert error["code"] == "upstream_unavailable"
    assert error["message"] == "The openai provider cannot be reached (after 2 attempts)"


def test_upstream_503_is_503_after_retries(assistant: Server, upstream: FakeControl) -> None:
    upstream.script({"status": 503, "message": "overloaded", "times": 2})
    response = chat(assistant.url, {"messages": USER})
    assert response.status_code == 503
    assert error_of(response)["code"] == "upstream_unavailable"
    assert "overloaded" not in error_of(response)["message"], "the upstream's words stay in"
    assert len(upstream.requests()) == 2


def test_connect_timeout_is_504(blackhole_assistant: Server) -> None:
    response = chat(blackhole_assistant.url, {"messages": USER})
    assert response.status_code == 504
    error = error_of(response)
    assert error["code"] == "upstream_timeout"
    assert "no connection within 1s" in error["message"]


@pytest.mark.parametrize("slowness", ["first_token_delay_ms", "delay_headers_ms"])
def test_slow_first_token_is_504_and_the_upstream_request_is_cancelled(
    assistant: Server, upstream: FakeControl, slowness: str
) -> None:
    upstream.script({slowness: HANG, "times": 2})
    response = chat(assistant.url, {"messages": USER, "stream": True})
    assert response.status_code == 504
    error = error_of(response)
    assert error["code"] == "upstream_timeout"
    assert error["message"] == (
        "The openai provider was too slow: no first token within 1.5s (after 2 attempts)"
    )
    assert [r["state"] for r in upstream.settled(2)] == ["cancelled", "cancelled"]


def test_failure_before_the_first_token_is_retried(
    assistant: Server, upstream: FakeControl
) -> None:
    upstream.script({"status": 500, "message": "transient"})
    response = chat(assistant.url, {"messages": USER})
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "Echo: hello there"
    assert [r["state"] for r in upstream.requests()] == ["failed", "completed"]


def test_persistent_upstream_error_is_502_after_all_attempts(
    assistant: Server, upstream: FakeControl
) -> None:
    upstream.script({"status": 500, "message": "model crashed", "times": 2})
    response = chat(assistant.url, {"messages": USER})
    assert response.status_code == 502
    assert error_of(response)["message"] == (
        "The openai provider failed: HTTP 500 (after 2 attempts)"
    )


def test_stall_after_the_first_token_ends_the_stream_with_an_error(
    assistant: Server, upstream: FakeControl
) -> None:
    upstream.script({"stall_after": 1})
    status, payloads = stream_payloads(assistant.url, {"messages": USER})
    assert status == 200
    assert payloads[0]["choices"][0]["delta"]["content"] == "Echo: "
    assert payloads[-1]["error"]["code"] == "upstream_timeout"
    assert payloads[-1]["error"]["message"] == (
        "The openai provider was too slow: no token within 1.5s."
    )
    assert "[DONE]" not in payloads
    assert upstream.settled(1)[0]["state"] == "cancelled"


def test_mid_stream_drop_ends_the_stream_with_an_error(
    assistant: Server, upstream: FakeControl
) -> None:
    upstream.script({"drop_after": 2})
    status, payloads = stream_payloads(assistant.url, {"messages": USER})
    assert status == 200
    assert [p["choices"][0]["delta"]["content"] for p in payloads[:2]] == ["Echo: ", "hello "]
    error = payloads[-1]["error"]
    assert error["code"] == "upstream_error"
    assert error["message"].startswith("The openai provider failed: the connection broke")
    assert "[DONE]" not in payloads


def test_mid_stream_drop_fails_a_non_streamed_request(
    assistant: Server, upstream: FakeControl
) -> None:
    upstream.script({"drop_after": 2})
    response = chat(assistant.url, {"messages": USER})
    assert response.status_code == 502
    assert "the connection broke" in error_of(response)["message"]


def test_error_event_mid_stream_is_passed_on(assistant: Server, upstream: FakeControl) -> None:
    upstream.script({"error_after": 1, "message": "CUDA out of memory"})
    _, payloads = stream_payloads(assistant.url, {"messages": USER})
    assert payloads[-1]["error"]["message"] == "The openai provider failed: it reported an error."


def test_caller_disconnect_cancels_the_upstream_stream(
    assistant: Server, upstream: FakeControl
) -> None:
    tokens = [f"t{i} " for i in range(40)]
    upstream.script({"tokens": tokens, "delay_ms": 250})
    body = {"messages": USER, "stream": True}
    with httpx.stream("POST", f"{assistant.url}/v1/chat/completions", json=body) as response:
        events = iter_events(response.iter_lines())
        assert "t0" in next(events).data
        assert "t1" in next(events).data
    record = upstream.settled(1)[0]
    assert record["state"] == "cancelled"
    assert record["tokens_sent"] < len(tokens)


def test_caller_disconnect_cancels_a_non_streamed_request(
    assistant: Server, upstream: FakeControl
) -> None:
    upstream.script({"delay_ms": 250, "tokens": [f"t{i} " for i in range(40)]})
    with pytest.raises(httpx.ReadTimeout):
        # The caller gives up after a second; the answer would take ten.
        httpx.post(f"{assistant.url}/v1/chat/completions", json={"messages": USER}, timeout=1)
    record = upstream.settled(1)[0]
    assert record["state"] == "cancelled"
    assert record["tokens_sent"] < 40


async def test_a_model_list_that_times_out_names_its_own_limit(
    openai_upstream: Server, upstream: FakeControl
) -> None:
    """The model list has its own limit, far below the endpoint's read backstop: the error
    names the limit that ran out. The provider is built as the service builds it."""
    settings = Settings(
        assistant_provider="openai",
        openai_base_url=f"{openai_upstream.url}/v1",
        openai_api_key=SecretStr("upstream-key"),
        openai_model="fake-model",
    )
    catalogue = single_provider(settings, "unused")
    built = build_upstream(catalogue.providers[0], catalogue, settings, [settings.openai_model])
    provider = built.provider_for(settings.openai_model)
    assert isinstance(provider, OpenAIProvider) and provider.endpoint.read_timeout > 0.3
    await provider.start()
    upstream.stall(True)
    try:
        with pytest.raises(AssistantError) as raised:
            await provider.list_models(0.3)
    finally:
        upstream.stall(False)
        await provider.close()
    assert raised.value.status == 504
    assert "within 0.3s" in raised.value.message, raised.value.message
