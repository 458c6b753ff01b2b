"""The call to assistant: one OpenAI-style streaming chat completion per reply.

aiohttp's client, one pooled keep-alive session for the process: measured, it adds about
half the latency per hop that httpx does, and the stack's first-token budget depends on it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Literal

import aiohttp
import orjson
from pydantic import ValidationError

from common.protocol import (
    ChatCompletionRequest,
    ChatMessage,
    ErrorResponse,
    StreamOptions,
    Usage,
)
from conversation.config import Settings

log = logging.getLogger(__name__)


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
    # Idle pooled connections are dropped before assistant's server closes them (uvicorn:
    # 5 s by default): reusing one the server is closing at that moment fails the request.
    connector = aiohttp.TCPConnector(
        limit=settings.assistant_max_connections,
        keepalive_timeout=settings.assistant_keepalive_timeout,
    )
    trace = aiohttp.TraceConfig()
    trace.on_connection_reuseconn.append(_mark_reused)
    return aiohttp.ClientSession(
        connector=connector, timeout=timeout, raise_for_status=False, trace_configs=[trace]
    )


async def _mark_reused(
    _: aiohttp.ClientSession,
    ctx: SimpleNamespace,
    __: aiohttp.TraceConnectionReuseconnParams,
) -> None:
    """Note on the request's probe that it went out on a pooled keep-alive connection."""
    probe = ctx.trace_request_ctx
    if isinstance(probe, _Probe):
        probe.reused = True


class _Probe:
    __slots__ = ("reused",)

    def __init__(self) -> None:
        self.reused = False


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
            async with await self._post(body) as resp:
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

    async def _post(self, body: str) -> aiohttp.ClientResponse:
        """Send the request; once more if a pooled connection turned out to be closed.

        A keep-alive connection the server closed while it sat idle fails only when used:
        reset or closed before a single byte of response. Assistant then never read the
        request, or read it and answered nothing, so nothing was generated and sending it
        again (on another connection) is safe. Any other failure is the caller's.
        """
        probe = _Probe()
        try:
            return await self._http.post(
                self._url, data=body, headers=self._headers, trace_request_ctx=probe
            )
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            if not probe.reused or isinstance(exc, aiohttp.ClientConnectorError):
                raise
            log.info("pooled connection to assistant was closed (%r); sending again", exc)
        return await self._http.post(self._url, data=body, headers=self._headers)

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


def _unreadable(reason: object) -> AssistantError:
    return AssistantError(
        "assistant_protocol", f"The assistant service sent an unreadable chunk: {reason}"
    )


def _parse_chunk(payload: bytes) -> list[str | Usage]:
    """A chunk's text deltas, then its usage if it carries one.

    Plain orjson and dict look-ups, not pydantic: validating every chunk as a model was ~11%
    of conversation's streaming CPU. Only what is used is checked (choices[].delta.content,
    usage); anything else malformed is still an `assistant_protocol` error, never a crash.
    Error and usage chunks come once per reply, so they keep their pydantic models.
    """
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise _unreadable(exc) from exc
    if not isinstance(data, dict):
        raise _unreadable("not a JSON object")
    if "error" in data:
        try:
            err = ErrorResponse.model_validate(data).error
        except ValidationError as exc:
            raise _unreadable(exc) from exc
        raise AssistantError(
            err.code or "assistant_error", f"The model failed mid-reply: {err.message}"
        )
    choices = data.get("choices")
    if not isinstance(choices, list):
        raise _unreadable("no choices list")
    out: list[str | Usage] = []
    for choice in choices:
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if not isinstance(delta, dict):
            raise _unreadable("a choice without a delta object")
        content = delta.get("content")
        if content:
            if not isinstance(content, str):
                raise _unreadable("a delta whose content is not text")
            out.append(content)
    usage = data.get("usage")
    if usage is not None:
        try:
            out.append(Usage.model_validate(usage))
        except ValidationError as exc:
            raise _unreadable(exc) from exc
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
