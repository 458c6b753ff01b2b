"""Small readers for the assistant's OpenAI-shaped answers."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from tests.support.sse import read_events

USER = [{"role": "user", "content": "hello there"}]


def chat(url: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=30)


def stream_payloads(url: str, body: dict[str, Any]) -> tuple[int, list[Any]]:
    """Status and the decoded `data:` payloads of a streamed completion (`[DONE]` kept)."""
    with httpx.stream(
        "POST", f"{url}/v1/chat/completions", json={**body, "stream": True}, timeout=30
    ) as response:
        if response.status_code != 200:
            response.read()
            return response.status_code, [response.json()]
        events = read_events(response)
    return 200, [e.data if e.data == "[DONE]" else orjson.loads(e.data) for e in events]


def streamed_text(payloads: list[Any]) -> str:
    return "".join(
        choice["delta"].get("content") or ""
        for p in payloads
        if isinstance(p, dict)
        for choice in p.get("choices", [])
    )


def error_of(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error
