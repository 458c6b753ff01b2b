"""The call to assistant: one OpenAI-style streaming chat completion per reply.

Over `common.http`'s pooled aiohttp session. Text comes out a read at a time (see
`common.sse`), so a reply that piled up while this process was busy moves on in one piece.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
import orjson
from prometheus_client import Histogram
from pydantic import ValidationError

from common.http import pooled_session, post
from common.logs import request_id
from common.protocol import (
    ChatCompletionRequest,
    ChatMessage,
    ErrorResponse,
    StreamOptions,
    Usage,
)
from common.sse import ChunkReader
from conversation.config import Settings

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ReplyEnd:
    """How a reply ended, as assistant reported it: usage, and why the model stopped."""

    usage: Usage | None = None
    finish_reason: str | None = None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class Queued:
    """Before the first token: the model is busy and `ahead` requests wait before this one."""

    ahead: int


class AssistantCallError(Exception):
    """Assistant could not produce the reply; `message` tells a person what happened."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def create_http_session(settings: Settings) -> aiohttp.ClientSession:
    return pooled_session(
        connect_timeout=settings.assistant_connect_timeout,
        read_timeout=settings.assistant_read_timeout,
        max_connections=settings.assistant_max_connections,
        keepalive_timeout=settings.assistant_keepalive_timeout,
    )


AssistantState = Literal["ready", "loading", "failed", "unreachable"]
# Seconds a readiness probe may take: one that hangs is itself the answer "not ready".
READY_TIMEOUT = 2.0


class AssistantClient:
    def __init__(
        self, http: aiohttp.ClientSession, settings: Settings, latency: Histogram | None = None
    ) -> None:
        self._http = http
        self._latency = latency  # a histogram (child) of the time to assistant's answer
        base = settings.assistant_url.rstrip("/")
        self._url = base + "/v1/chat/completions"
        self._ready_url = base + "/health/ready"
        self._models_url = base + "/v1/models"
        self._model = settings.assistant_model
        self._max_tokens = settings.reply_max_tokens
        key = settings.assistant_api_key
        self._auth = {"Authorization": f"Bearer {key}"} if key else {}
        self._headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
            **self._auth,
        }

    def _request_body(
        self, messages: list[ChatMessage], model: str | None, user: str | None
    ) -> str:
        request = ChatCompletionRequest(
            messages=messages,
            model=model or self._model,
            stream=True,
            stream_options=StreamOptions(include_usage=True),
            max_tokens=self._max_tokens,
            user=user,
        )
        return request.model_dump_json(exclude_none=True)

    async def stream(
        self, messages: list[ChatMessage], model: str | None = None, user: str | None = None
    ) -> AsyncIterator[list[str] | Queued | ReplyEnd]:
        """Yield the reply's text deltas as they arrive (those read together, together),
        then how it ended; before the first, each new place in the model's queue. `model`:
        the chat's (None: ASSISTANT_MODEL, else assistant's default); `user`: an opaque id
        of who asked, by which assistant shares its embedded model fairly."""
        body = self._request_body(messages, model, user)
        # A long history would otherwise stay in memory for the whole reply, twice.
        del messages
        rid = request_id.get()  # assistant logs under the id of the request that asked
        headers = {**self._headers, "X-Request-ID": rid} if rid else self._headers
        began = time.perf_counter()
        try:
            async with await post(self._http, self._url, body, headers) as resp:
                if self._latency is not None:
                    self._latency.observe(time.perf_counter() - began)
                del body
                if resp.status != 200:
                    raise await _failure(resp)
                chunks = _Chunks()
                async for texts in chunks.batches(resp.content.iter_any()):
                    if chunks.ahead is not None:
                        yield Queued(chunks.ahead)
                        chunks.ahead = None
                    if texts:
                        yield texts
                if not chunks.done:
                    raise AssistantCallError(
                        "assistant_disconnected",
                        "The assistant service closed the connection before finishing the "
                        "reply. The partial reply is kept; regenerate it when assistant is back.",
                    )
                yield chunks.end
        # The person reading these messages is no operator: addresses and exception text stay
        # in the log.
        except aiohttp.ClientConnectorError as exc:
            log.warning("assistant at %s unreachable: %s", self._url, exc.os_error)
            raise AssistantCallError(
                "assistant_unavailable",
                "The assistant service cannot be reached. "
                "Your message is saved; regenerate the reply once assistant is running.",
            ) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("connection to assistant failed mid-reply: %r", exc)
            raise AssistantCallError(
                "assistant_disconnected",
                "The connection to the assistant service failed mid-reply. "
                "The partial reply is kept; regenerate it when assistant is back.",
            ) from exc

    async def models(self) -> Any:
        """Assistant's `GET /v1/models` answer, parsed JSON (read by conversation.catalogue)."""
        async with self._http.get(
            self._models_url,
            headers=self._auth,
            timeout=aiohttp.ClientTimeout(total=READY_TIMEOUT),
        ) as resp:
            resp.raise_for_status()
            return await resp.json(content_type=None)

    async def complete(
        self, messages: list[ChatMessage], model: str | None, max_tokens: int
    ) -> str:
        """A short non-streaming completion's text (a chat's title); AssistantCallError
        when assistant refuses or cannot be reached. The caller bounds its time."""
        body = ChatCompletionRequest(
            messages=messages, model=model or self._model, stream=False, max_tokens=max_tokens
        ).model_dump_json(exclude_none=True)
        headers = {**self._auth, "Content-Type": "application/json"}
        try:
            async with self._http.post(self._url, data=body, headers=headers) as resp:
                if resp.status != 200:
                    raise await _failure(resp)
                answer = await resp.json(content_type=None)
            return str(answer["choices"][0]["message"]["content"] or "")
        except (aiohttp.ClientError, TimeoutError, ValueError, LookupError, TypeError) as exc:
            raise AssistantCallError("assistant_error", f"no completion: {exc!r}") from exc

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


class _Chunks(ChunkReader):
    """One reply's chunks from assistant: its text, its usage, an error it reports."""

    failures = (AssistantCallError,)

    def __init__(self) -> None:
        super().__init__()
        self.end = ReplyEnd()
        self.ahead: int | None = None  # the queue place read and not yet handed on

    def parse(self, payload: bytes, texts: list[str]) -> None:
        ahead = _parse_chunk(payload, texts, self.end)
        if ahead is not None:
            self.ahead = ahead

    def noted(self) -> bool:
        return self.ahead is not None


def _unreadable(reason: object) -> AssistantCallError:
    return AssistantCallError(
        "assistant_protocol", f"The assistant service sent an unreadable chunk: {reason}"
    )


def _parse_chunk(payload: bytes, texts: list[str], end: ReplyEnd) -> int | None:
    """Append a chunk's text deltas to `texts`; note its usage and finish reason in `end`;
    return the place in the model's queue that a chunk before the first token tells.

    Plain orjson and dict look-ups, not pydantic: this runs once per token, and a model's
    validation costs several times the look-ups. Only what is used is checked
    (choices[].delta.content, usage); anything else malformed is still an
    `assistant_protocol` error, never a crash. Error and usage chunks come once per reply,
    so they keep their pydantic models.
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
        raise AssistantCallError(
            err.code or "assistant_error", f"The model failed mid-reply: {err.message}"
        )
    queue = data.get("queue")
    if isinstance(queue, dict) and isinstance(queue.get("position"), int):
        return int(queue["position"])
    choices = data.get("choices")
    if not isinstance(choices, list):
        raise _unreadable("no choices list")
    for choice in choices:
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if not isinstance(delta, dict):
            raise _unreadable("a choice without a delta object")
        content = delta.get("content")
        if content:
            if not isinstance(content, str):
                raise _unreadable("a delta whose content is not text")
            texts.append(content)
        reason = choice.get("finish_reason")
        if reason is not None:
            end.finish_reason = str(reason)
    if "usage" not in data:
        return None
    end.model = str(data.get("model") or "") or None  # once per reply: the usage chunk
    usage = data["usage"]
    if usage is None:
        return None
    try:
        end.usage = Usage.model_validate(usage)
    except ValidationError as exc:
        raise _unreadable(exc) from exc
    return None


async def _failure(resp: aiohttp.ClientResponse) -> AssistantCallError:
    text = await resp.text(errors="replace")
    code: str | None = None
    try:
        error = ErrorResponse.model_validate_json(text).error
        detail, code = error.message, error.code
    except ValidationError:
        # Not assistant's own error shape (a proxy's page, say): for the log, not the user.
        log.warning("assistant answered %s: %r", resp.status, text[:300])
        detail = resp.reason or "no detail"
    if resp.status == 503 and code == "not_ready":
        # Assistant is up but its model is not in memory yet: worth waiting for, not a fault.
        return AssistantCallError(
            "assistant_not_ready",
            f"The model is still loading ({detail}). Your message is saved; regenerate the "
            "reply once the model is ready.",
        )
    return AssistantCallError(
        "assistant_error", f"The assistant service answered {resp.status}: {detail}"
    )
