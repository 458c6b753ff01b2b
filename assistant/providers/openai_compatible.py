"""Any OpenAI-compatible server: `POST {OPENAI_BASE_URL}/chat/completions`, streamed.

One code path for OpenAI, vLLM, Ollama, llama.cpp's server and Hugging Face's router: they
all speak `POST /chat/completions` with server-sent chunks. The request goes out on the
pooled aiohttp session of `common.http` (the hop's latency is the product's budget, see
bench scenario 1), the body is built here from messages the API has already validated and
encoded with orjson, and the stream is read a socket read at a time: every chunk in it is
decoded with orjson, without building a typed object per token, and the read's texts go on
together.

Messages go upstream as they are: several system messages (the operator's first), and a
final assistant message, which this provider does not turn into a continuation. The server
decides what that means (vLLM, given `continue_final_message`, continues it; OpenAI answers
after it); sending vLLM's own flag would make OpenAI refuse the request.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from typing import Any

import aiohttp
import orjson

from assistant.config import Settings
from assistant.errors import (
    AssistantError,
    from_upstream_status,
    parse_retry_after,
    upstream_failed,
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


def error_message(body: object, fallback: str) -> str:
    """The upstream's own words, from OpenAI's `{"error": {"message"}}` or a plain string."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return fallback


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
            detail = error_message(chunk, "error event")
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


class OpenAIProvider(Provider):
    name = "openai"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings.openai_model)
        self.settings = settings
        self._url = settings.openai_base_url.rstrip("/") + "/chat/completions"
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        s = self.settings
        key = s.openai_api_key.get_secret_value() if s.openai_api_key else ""
        if not key:
            # Local servers (vLLM, Ollama, llama.cpp) accept any key; OpenAI will answer 401,
            # which callers then see as a 502 naming this provider.
            log.warning("OPENAI_API_KEY is not set; sending a placeholder key")
        # Retries and first-token/idle timeouts are ours (assistant.generation): the session
        # only bounds connecting, and its read timeout is a backstop.
        backstop = max(s.upstream_first_token_timeout, s.upstream_idle_timeout)
        self._http = pooled_session(
            connect_timeout=s.upstream_connect_timeout,
            read_timeout=backstop + s.upstream_connect_timeout,
            max_connections=s.upstream_max_connections,
            keepalive_timeout=s.upstream_keepalive_timeout,
            headers={
                "Authorization": f"Bearer {key or 'not-set'}",
                "Content-Type": "application/json",
                "Accept": "text/event-stream",
            },
        )
        log.info("openai provider: %s, model %s", s.openai_base_url, s.openai_model)
        await super().start()

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def open(self, messages: list[ChatMessage], params: GenerationParams) -> TokenStream:
        return self._stream(message_dicts(messages), params)

    def _map_error(self, exc: aiohttp.ClientError) -> AssistantError:
        s = self.settings
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            return upstream_timeout(self.name, "connection", s.upstream_connect_timeout)
        if isinstance(exc, aiohttp.ServerTimeoutError):
            return upstream_timeout(self.name, "response", s.upstream_first_token_timeout)
        if isinstance(exc, aiohttp.ClientConnectorError):
            return upstream_unreachable(self.name, transport_detail(exc))
        return upstream_failed(self.name, "the connection broke", transport_detail(exc))

    async def _status_error(self, response: aiohttp.ClientResponse) -> AssistantError:
        text = await response.text(errors="replace")
        try:
            body: object = orjson.loads(text)
        except orjson.JSONDecodeError:
            body = None
        # Only logged: a proxy's error page is no message for the caller, but tells the
        # operator which hop failed.
        detail = error_message(body, text[:300] or response.reason or f"HTTP {response.status}")
        retry_after = parse_retry_after(response.headers, self.settings.assistant_retry_after)
        return from_upstream_status(self.name, response.status, detail, retry_after)

    async def _stream(
        self, messages: list[dict[str, str]], params: GenerationParams
    ) -> AsyncGenerator[StreamItem, None]:
        body: dict[str, Any] = {
            "model": self.model_id,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            # Always bounded: a server's own default may be its whole context window.
            "max_tokens": token_budget(params.max_tokens, self.settings.openai_max_tokens),
        }
        # Unset options stay out of the request: some servers reject explicit nulls.
        if params.temperature is not None:
            body["temperature"] = params.temperature
        if params.top_p is not None:
            body["top_p"] = params.top_p
        if params.stop:
            body["stop"] = list(params.stop)
        assert self._http is not None
        chunks = Chunks(self.name)
        try:
            async with await post(self._http, self._url, orjson.dumps(body)) as response:
                if response.status != 200:
                    raise await self._status_error(response)
                # Read on to the end of the body after [DONE] (servers end it right there):
                # a response left unread closes its connection instead of pooling it, and
                # every request would open a new one (TCP, and TLS for a remote API).
                async for texts in chunks.batches(response.content.iter_any()):
                    yield texts
        except aiohttp.ClientError as exc:
            raise self._map_error(exc) from exc
        except orjson.JSONDecodeError as exc:
            raise upstream_failed(self.name, "a chunk was not JSON", str(exc)) from exc
        yield chunks.finish()
