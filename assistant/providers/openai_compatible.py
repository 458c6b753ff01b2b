"""Any OpenAI-compatible server: `POST {base_url}/chat/completions`, streamed.

One code path for OpenAI, vLLM, Ollama, llama.cpp's server and Hugging Face's router: they
all speak `POST /chat/completions` with server-sent chunks. Each provider of this kind has
its own pooled aiohttp session (`common.http`), so its own connections, key, base URL and
timeouts: one slow upstream never holds another's connections. The body is built here from
messages the API has already validated and encoded with orjson, and the stream is read a
socket read at a time: every chunk is decoded with orjson, without a typed object per
token, and a read's texts go on together. Retries before the first token are ours
(`assistant.generation`, per provider policy).

Not the `openai` SDK: measured in front of the same fake model, the SDK (on its aiohttp
transport, the body built here, the stream read raw) added 0.3-0.6 ms to the p50 and
0.6-1.2 ms to the p99 time to first token of every request, which put assistant over its
budget against LiteLLM (bench/README.md, "The openai SDK"). The SDK stays the tests' client
of assistant, as users' apps call it.

Messages go upstream as they are: several system messages (the operator's first), and a
final assistant message, which this provider does not turn into a continuation. The server
decides what that means (vLLM, given `continue_final_message`, continues it; OpenAI answers
after it); sending vLLM's own flag would make OpenAI refuse the request.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from assistant.errors import (
    AssistantError,
    from_upstream_status,
    parse_retry_after,
    upstream_failed,
    upstream_message,
    upstream_timeout,
    upstream_unreachable,
)
from assistant.providers.base import (
    Finish,
    GenerationParams,
    Provider,
    StreamItem,
    TokenStream,
    finish_reason,
    message_dicts,
    token_budget,
    transport_detail,
)
from common.http import pooled_session, post
from common.protocol import ChatMessage, FinishReason, Usage
from common.sse import ChunkReader

log = logging.getLogger(__name__)


def usage_of(data: dict[str, Any] | None) -> Usage | None:
    if not data:
        return None
    prompt = int(data.get("prompt_tokens") or 0)
    completion = int(data.get("completion_tokens") or 0)
    total = int(data.get("total_tokens") or prompt + completion)
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=total)


class Chunks(ChunkReader):
    """One stream of `chat.completion.chunk` events: its text, finish reason and usage."""

    failures = (AssistantError, orjson.JSONDecodeError)

    def __init__(self, provider: str) -> None:
        super().__init__()
        self.provider = provider
        self.reason: FinishReason | None = None
        self.usage: Usage | None = None

    def parse(self, payload: bytes, texts: list[str]) -> None:
        chunk = orjson.loads(payload)
        if "error" in chunk:
            detail = upstream_message(chunk, "error event")
            raise upstream_failed(self.provider, "it reported an error", detail, retryable=False)
        if chunk.get("usage"):
            self.usage = usage_of(chunk["usage"])
        for choice in chunk.get("choices") or ():
            text = (choice.get("delta") or {}).get("content")
            if text:
                texts.append(text)
            if choice.get("finish_reason"):
                self.reason = finish_reason(choice["finish_reason"])

    def finish(self) -> Finish:
        if self.reason is None:
            raise upstream_failed(self.provider, "the stream ended without a finish reason")
        return Finish(self.reason, self.usage)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One OpenAI-compatible upstream as this provider needs it (secrets already resolved)."""

    name: str
    base_url: str
    api_key: str | None
    model: str  # sent when a request names no model of this provider
    max_tokens: int
    connect_timeout: float
    read_timeout: float  # a backstop: first-token and idle timeouts are assistant.generation's
    max_connections: int
    keepalive_timeout: float
    retry_after: int  # what callers are told to wait when the upstream names no wait


@dataclass(frozen=True, slots=True)
class Listed:
    """A model an upstream's `GET /models` offers."""

    id: str
    context_length: int | None


class OpenAIProvider(Provider):
    name = "openai"

    def __init__(self, endpoint: Endpoint) -> None:
        super().__init__(endpoint.model)
        self.name = endpoint.name
        self.endpoint = endpoint
        base = endpoint.base_url.rstrip("/")
        self._completions_url = base + "/chat/completions"
        self._models_url = base + "/models"
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        e = self.endpoint
        if not e.api_key:
            # Local servers (vLLM, Ollama, llama.cpp) accept any key; OpenAI will answer 401,
            # which callers then see as a 502 naming this provider.
            log.warning("%s: no API key is set; sending a placeholder key", e.name)
        self._http = pooled_session(
            connect_timeout=e.connect_timeout,
            read_timeout=e.read_timeout,
            max_connections=e.max_connections,
            keepalive_timeout=e.keepalive_timeout,
            headers={
                "Authorization": f"Bearer {e.api_key or 'not-set'}",
                "Content-Type": "application/json",
            },
        )
        log.info("%s provider: %s", e.name, e.base_url)
        await super().start()

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def open(self, messages: list[ChatMessage], params: GenerationParams) -> TokenStream:
        return self._stream(message_dicts(messages), params)

    async def list_models(self, seconds: float) -> list[Listed] | None:
        """The upstream's `GET /models`: None when it has no such route (it answered, so it
        is reachable); raises `AssistantError` when it cannot answer."""
        assert self._http is not None
        timeout = aiohttp.ClientTimeout(total=seconds, connect=seconds, sock_read=seconds)
        try:
            async with self._http.get(self._models_url, timeout=timeout) as response:
                if response.status in (404, 405):
                    return None
                if response.status != 200:
                    raise await self._status_error(response)
                page = orjson.loads(await response.read())
        except aiohttp.ClientError as exc:
            raise self._map_error(exc, seconds) from exc
        except TimeoutError as exc:
            raise upstream_timeout(self.name, "response", seconds) from exc
        except orjson.JSONDecodeError as exc:
            raise upstream_failed(self.name, "its model list was not JSON", str(exc)) from exc
        found = []
        entries = page.get("data") if isinstance(page, dict) else None
        for model in entries if isinstance(entries, list) else ():
            if not isinstance(model, dict) or not isinstance(model.get("id"), str):
                continue
            # vLLM says `max_model_len`; llama.cpp's server and others `context_length`.
            length = model.get("max_model_len") or model.get("context_length")
            found.append(Listed(model["id"], length if isinstance(length, int) else None))
        return found

    def _map_error(self, exc: aiohttp.ClientError, seconds: float | None = None) -> AssistantError:
        """`seconds`: the request's own limit for connecting and reading, when it has one
        (the model list's), instead of the endpoint's."""
        e = self.endpoint
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            return upstream_timeout(self.name, "connection", seconds or e.connect_timeout)
        if isinstance(exc, aiohttp.ServerTimeoutError):
            return upstream_timeout(self.name, "response", seconds or e.read_timeout)
        if isinstance(exc, aiohttp.ClientConnectorError):
            return upstream_unreachable(self.name, transport_detail(exc))
        return upstream_failed(self.name, "the connection broke", transport_detail(exc))

    async def _status_error(self, response: aiohttp.ClientResponse) -> AssistantError:
        text = await response.text(errors="replace")
        try:
            body: object = orjson.loads(text)
        except orjson.JSONDecodeError:
            body = text
        detail = upstream_message(body, response.reason or f"HTTP {response.status}")
        retry_after = parse_retry_after(response.headers)
        return from_upstream_status(
            self.name, response.status, detail, retry_after, self.endpoint.retry_after
        )

    def request_body(
        self, messages: list[dict[str, str]], params: GenerationParams
    ) -> dict[str, Any]:
        """The streamed `chat/completions` request this provider sends."""
        e = self.endpoint
        body: dict[str, Any] = {
            "model": params.model or self.model_id,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            # Always bounded: a server's own default may be its whole context window.
            "max_tokens": token_budget(params.max_tokens, e.max_tokens),
        }
        # Unset options stay out of the request: some servers reject explicit nulls.
        if params.temperature is not None:
            body["temperature"] = params.temperature
        if params.top_p is not None:
            body["top_p"] = params.top_p
        if params.stop:
            body["stop"] = list(params.stop)
        return body

    async def _stream(
        self, messages: list[dict[str, str]], params: GenerationParams
    ) -> AsyncGenerator[StreamItem, None]:
        assert self._http is not None
        body = self.request_body(messages, params)
        chunks = Chunks(self.name)
        try:
            sent = post(self._http, self._completions_url, orjson.dumps(body))
            async with await sent as response:
                if response.status != 200:
                    raise await self._status_error(response)
                async for texts in chunks.batches(response.content.iter_any()):
                    yield texts
        except aiohttp.ClientError as exc:
            raise self._map_error(exc) from exc
        except orjson.JSONDecodeError as exc:
            raise upstream_failed(self.name, "a chunk was not JSON", str(exc)) from exc
        yield chunks.finish()
