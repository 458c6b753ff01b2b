"""The call to assistant: one OpenAI-style streaming chat completion per reply.

aiohttp's client, one pooled keep-alive session for the process: measured, it adds about
half the latency per hop that httpx does, and the stack's first-token budget depends on it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal

import aiohttp
import orjson
from pydantic import ValidationError

from common.protocol import (
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatMessage,
    ErrorResponse,
    StreamOptions,
    Usage,
)
from conversation.config import Settings


class AssistantError(Exception):
    """Assistant could not produce the reply; `message` tells a person what happened."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def create_http_session(settings: Settings) -> aiohttp.ClientSession:
    timeout = aiohttp.ClientTimeout(
        total=None,
        sock_connect=settings.assistant_connect_timeout,
        sock_read=settings.assistant_read_timeout,
    )
    connector = aiohttp.TCPConnector(limit=settings.assistant_max_connections, keepalive_timeout=60)
    return aiohttp.ClientSession(connector=connector, timeout=timeout, raise_for_status=False)


AssistantState = Literal["ready", "loading", "failed", "unreachable"]
# Seconds a readiness probe may take: one that hangs is itself the answer "not ready".
READY_TIMEOUT = 2.0


class AssistantClient:
    def __init__(self, http: aiohttp.ClientSession, settings: Settings) -> None:
        self._http = http
        base = settings.assistant_url.rstrip("/")
        self._url = base + "/v1/chat/completions"
        self._ready_url = base + "/health/ready"
        self._model = settings.assistant_model
        self._max_tokens = settings.reply_max_tokens
        self._headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if settings.assistant_api_key:
            self._headers["Authorization"] = f"Bearer {settings.assistant_api_key}"

    async def stream(self, messages: list[ChatMessage]) -> AsyncIterator[str | Usage]:
        """Yield the reply's text deltas as they arrive, then its usage if reported."""
        request = ChatCompletionRequest(
            messages=messages,
            model=self._model,
            stream=True,
            stream_options=StreamOptions(include_usage=True),
            max_tokens=self._max_tokens,
        )
        body = request.model_dump_json(exclude_none=True)
        try:
            async with self._http.post(self._url, data=body, headers=self._headers) as resp:
                if resp.status != 200:
                    raise await _failure(resp)
                finished = False
                async for line in resp.content:
                    if not line.startswith(b"data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == b"[DONE]":
                        finished = True
                        break
                    for item in _parse_chunk(payload):
                        yield item
                if not finished:
                    raise AssistantError(
                        "assistant_disconnected",
                        "The assistant service closed the connection before finishing the "
                        "reply. The partial reply is kept; regenerate it when assistant is back.",
                    )
        except aiohttp.ClientConnectorError as exc:
            raise AssistantError(
                "assistant_unavailable",
                f"The assistant service at {self._url} cannot be reached ({exc.os_error}). "
                "Your message is saved; regenerate the reply once assistant is running.",
            ) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AssistantError(
                "assistant_disconnected",
                f"The connection to the assistant service failed mid-reply ({exc!r}). "
                "The partial reply is kept; regenerate it when assistant is back.",
            ) from exc

    async def readiness(self) -> AssistantState:
        """Assistant's `/health/ready`: whether it can write a reply now, and if not, why."""
        try:
            async with self._http.get(
                self._ready_url, timeout=aiohttp.ClientTimeout(total=READY_TIMEOUT)
            ) as resp:
                if resp.status == 200:
                    return "ready"
                body = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return "unreachable"
        state = body.get("status") if isinstance(body, dict) else None
        if resp.status == 503 and state == "starting":
            return "loading"
        if resp.status == 503 and state == "failed":
            return "failed"
        return "unreachable"


def _parse_chunk(payload: bytes) -> list[str | Usage]:
    try:
        data = orjson.loads(payload)
        if "error" in data:
            err = ErrorResponse.model_validate(data).error
            raise AssistantError(
                err.code or "assistant_error", f"The model failed mid-reply: {err.message}"
            )
        chunk = ChatCompletionChunk.model_validate(data)
    except (orjson.JSONDecodeError, ValidationError) as exc:
        raise AssistantError(
            "assistant_protocol", f"The assistant service sent an unreadable chunk: {exc}"
        ) from exc
    out: list[str | Usage] = []
    for choice in chunk.choices:
        if choice.delta.content:
            out.append(choice.delta.content)
    if chunk.usage is not None:
        out.append(chunk.usage)
    return out


async def _failure(resp: aiohttp.ClientResponse) -> AssistantError:
    text = await resp.text(errors="replace")
    code: str | None = None
    try:
        error = ErrorResponse.model_validate_json(text).error
        detail, code = error.message, error.code
    except ValidationError:
        detail = text[:300] or resp.reason or "no detail"
    if resp.status == 503 and code == "not_ready":
        # Assistant is up but its model is not in memory yet: worth waiting for, not a fault.
        return AssistantError(
            "assistant_not_ready",
            f"The model is still loading ({detail}). Your message is saved; regenerate the "
            "reply once the model is ready.",
        )
    return AssistantError(
        "assistant_error", f"The assistant service answered {resp.status}: {detail}"
    )
