"""The real embedded SmolLM2 (llama.cpp in-process): short answers, streaming, cancellation."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.assistant.helpers import chat, stream_payloads, streamed_text
from tests.support.servers import Server, wait_until
from tests.support.sse import iter_events

pytestmark = pytest.mark.model

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
# Keeps the model busy for its 1000-token cap: its greedy reply never ends sooner (a counting
# request ends at "20"), orders of magnitude longer than any step of a test.
LONG = {
    "messages": [{"role": "user", "content": "Repeat the word hello 1000 times."}],
    "temperature": 0,
    "max_tokens": 1000,
    "stream": True,
}


def local_stats(server: Server) -> dict[str, Any]:
    stats: dict[str, Any] = httpx.get(f"{server.url}/health").json()["stats"]
    return stats


def idle(server: Server) -> None:
    wait_until(lambda: not local_stats(server)["busy"], 60, "the local model to finish")


def test_short_answer(local_assistant: Server) -> None:
    response = chat(local_assistant.url, {"messages": QUESTION, "max_tokens": 12})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["choices"][0]["message"]["content"].strip()
    assert body["choices"][0]["finish_reason"] in ("stop", "length")
    usage = body["usage"]
    assert usage["prompt_tokens"] > 0 and 0 < usage["completion_tokens"] <= 12


def test_streamed_answer(local_assistant: Server) -> None:
    status, payloads = stream_payloads(
        local_assistant.url,
        {"messages": QUESTION, "max_tokens": 12, "stream_options": {"include_usage": True}},
    )
    assert status == 200
    assert payloads[-1] == "[DONE]"
    assert streamed_text(payloads).strip()
    content_chunks = [p for p in payloads[:-1] if p["choices"] and p["choices"][0]["delta"]]
    assert len(content_chunks) > 1, "the answer arrives token by token"
    assert payloads[-2]["usage"]["completion_tokens"] == len(content_chunks)


def test_cancelled_stream_stops_generation(local_assistant: Server) -> None:
    before = local_stats(local_assistant)
    with httpx.stream(
        "POST", f"{local_assistant.url}/v1/chat/completions", json=LONG, timeout=60
    ) as r:
        assert r.status_code == 200
        next(iter_events(r.iter_lines()))
    idle(local_assistant)
    after = local_stats(local_assistant)
    assert after["cancelled"] == before["cancelled"] + 1
    assert after["completed"] == before["completed"]
    assert after["tokens_after_cancel"] <= 2


def test_full_queue_answers_503_with_retry_after(local_assistant: Server) -> None:
    with httpx.stream(
        "POST", f"{local_assistant.url}/v1/chat/completions", json=LONG, timeout=60
    ) as r:
        # Keep the reader referenced: a collected line iterator closes the connection.
        events = iter_events(r.iter_lines())
        next(events)
        stats = local_stats(local_assistant)
        assert stats["busy"], f"the model should still be counting: {stats}"
        refused = chat(local_assistant.url, {"messages": QUESTION, "max_tokens": 4})
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "2"
    assert refused.json()["error"]["code"] == "overloaded"
    assert "LOCAL_QUEUE_SIZE=0" in refused.json()["error"]["message"]
    idle(local_assistant)
