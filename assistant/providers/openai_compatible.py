"""Any OpenAI-compatible server through the `openai` SDK: `POST {base_url}/chat/completions`.

One code path for OpenAI, vLLM, Ollama, llama.cpp's server and Hugging Face's router: they
all speak `POST /chat/completions` with server-sent chunks. Each provider of this kind has
its own `openai.AsyncOpenAI` client, so its own connection pool (aiohttp underneath, through
`openai.DefaultAioHttpClient`), key, base URL and timeouts: one slow upstream never holds
another's connections. The SDK builds and sends the request, owns authentication and turns
error statuses into typed exceptions; its own retries are off, because retries before the
first token are ours (`assistant.generation`, per provider policy).

What the SDK costs (`python -m bench.sdk_chunks`, this project's shared 2-core VM, two runs
at load average 7): the stream is read from the transport's body stream and decoded by
`Chunks` (orjson), ~2.5 us per chunk against ~2.2 us for `Chunks` on the bytes alone, where
the SDK's typed `ChatCompletionChunk` stream costs ~75-150 us; a request through
`AsyncOpenAI.post` with the body built here costs ~0.4 ms more than the hand-written aiohttp
client this replaced, and `chat.completions.create` (its transform of typed parameters walks
every message) ~1-1.5 ms more. aiohttp underneath (`openai.DefaultAioHttpClient`): httpx2's
own transport costs more again. What that does through the service is in bench/README.md.

Messages go upstream as they are: several system messages (the operator's first), and a
final assistant message, which this provider does not turn into a continuation. The server
decides what that means (vLLM, given `continue_final_message`, continues it; OpenAI answers
after it); sending vLLM's own flag would make OpenAI refuse the request.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx2
import openai
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


def causes(exc: BaseException) -> Iterator[BaseException]:
    seen: BaseException | None = exc
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


class OpenAIProvider(Provider):
    name = "openai"

    def __init__(self, endpoint: Endpoint) -> None:
        super().__init__(endpoint.model)
        self.name = endpoint.name
        self.endpoint = endpoint
        self._client: openai.AsyncOpenAI | None = None

    async def start(self) -> None:
        e = self.endpoint
        if not e.api_key:
            # Local servers (vLLM, Ollama, llama.cpp) accept any key; OpenAI will answer 401,
            # which callers then see as a 502 naming this provider.
            log.warning("%s: no API key is set; sending a placeholder key", e.name)
        timeout = httpx2.Timeout(
            connect=e.connect_timeout,
            read=e.read_timeout,
            write=e.connect_timeout,
            pool=e.connect_timeout,
        )
        limits = httpx2.Limits(
            max_connections=e.max_connections,
            max_keepalive_connections=e.max_connections,
            # Why below the server's idle timeout: common/http.py's pooled_session.
            keepalive_expiry=e.keepalive_timeout,
        )
        self._client = openai.AsyncOpenAI(
            api_key=e.api_key or "not-set",
            base_url=e.base_url,
            max_retries=0,
            timeout=timeout,
            http_client=openai.DefaultAioHttpClient(timeout=timeout, limits=limits),
            # The body is read straight from the transport's stream (`_stream`), past
            # httpx2's decoder and chunker, two generators per read that cost a tenth of a
            # 2,000-token stream's rate (bench/README.md): so it must come uncompressed. An
            # event stream is never worth compressing anyway: it would hold tokens back.
            default_headers={"Accept-Encoding": "identity"},
        )
        log.info("%s provider: %s", e.name, e.base_url)
        await super().start()

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()

    async def open(self, messages: list[ChatMessage], params: GenerationParams) -> TokenStream:
        return self._stream(message_dicts(messages), params)

    async def list_models(self, seconds: float) -> list[Listed] | None:
        """The upstream's `GET /models`: None when it has no such route (it answered, so it
        is reachable); raises `AssistantError` when it cannot answer."""
        assert self._client is not None
        try:
            page = await self._client.with_options(timeout=seconds).models.list()
        except openai.APIStatusError as exc:
            if exc.status_code in (404, 405):
                return None
            raise self._map_error(exc) from exc
        except openai.OpenAIError as exc:
            raise self._map_error(exc) from exc
        found = []
        for model in page.data:
            extra = model.model_extra or {}
            # vLLM says `max_model_len`; llama.cpp's server and others `context_length`.
            length = extra.get("max_model_len") or extra.get("context_length")
            found.append(Listed(model.id, length if isinstance(length, int) else None))
        return found

    def _map_error(self, exc: BaseException) -> AssistantError:
        e = self.endpoint
        if isinstance(exc, openai.APIStatusError):
            response = exc.response
            detail = upstream_message(exc.body, response.reason_phrase or f"HTTP {exc.status_code}")
            retry_after = parse_retry_after(response.headers)
            return from_upstream_status(
                self.name, exc.status_code, detail, retry_after, e.retry_after
            )
        # The SDK wraps its transport's exceptions; aiohttp's own, at the root of the chain,
        # says best what happened (its transport maps a refused connection to a timeout):
        # the chain is read from its root.
        for cause in reversed(list(causes(exc))):
            if isinstance(cause, aiohttp.ConnectionTimeoutError | httpx2.ConnectTimeout):
                return upstream_timeout(self.name, "connection", e.connect_timeout)
            if isinstance(cause, aiohttp.ClientConnectorError | httpx2.ConnectError):
                return upstream_unreachable(self.name, transport_detail(cause))
            if isinstance(cause, aiohttp.ServerTimeoutError | httpx2.ReadTimeout):
                return upstream_timeout(self.name, "response", e.read_timeout)
        return upstream_failed(self.name, "the connection broke", transport_detail(exc))

    async def _stream(
        self, messages: list[dict[str, str]], params: GenerationParams
    ) -> AsyncGenerator[StreamItem, None]:
        e = self.endpoint
        assert self._client is not None
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
        chunks = Chunks(self.name)
        try:
            # The SDK's lower-level `post`, not `chat.completions.create`: the body is built
            # above from messages our API validated, and create's per-message transform of
            # its typed parameters costs more than the rest of the request (module docstring).
            response = await self._client.post(
                "/chat/completions", body=body, cast_to=httpx2.Response, stream=True
            )
            body_reads = response.stream
            assert isinstance(body_reads, httpx2.AsyncByteStream)
            try:
                async for texts in chunks.batches(body_reads):
                    yield texts
            finally:
                await response.aclose()
        except (openai.OpenAIError, httpx2.HTTPError, aiohttp.ClientError) as exc:
            raise self._map_error(exc) from exc
        except orjson.JSONDecodeError as exc:
            raise upstream_failed(self.name, "a chunk was not JSON", str(exc)) from exc
        yield chunks.finish()
