"""Any OpenAI-compatible server through the `openai` package's async client.

One code path for OpenAI, vLLM, Ollama, llama.cpp's server and Hugging Face's router: they
all speak `POST /chat/completions` with server-sent chunks. The client sends the request,
authenticates and raises typed errors for HTTP statuses; the body is built here from messages
the API has already validated, and the stream is read as raw lines decoded with orjson, which
skips building a typed model object per token.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from typing import Any

import httpx2
import openai
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
    transport_detail,
)
from common.protocol import ChatMessage, FinishReason, Usage

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


async def lines_of(response: httpx2.Response) -> AsyncGenerator[bytes, None]:
    """The body's lines as bytes (an unterminated last one included), orjson's input as is.

    httpx2's `aiter_lines` stacks two more generators per read, decodes to `str` and splits
    with `str.splitlines`, which also breaks on U+2028, U+0085 and other characters a JSON
    string may hold raw. Server-sent events are UTF-8 and end lines only with CR, LF or
    CRLF: exactly what `bytes.splitlines` splits on. A CRLF cut between two reads yields an
    extra empty line, which means nothing to the caller (it reads only `data:` lines).
    """
    pending = b""
    async for data in response.aiter_bytes():
        if not data:
            continue
        lines = (pending + data).splitlines() if pending else data.splitlines()
        pending = b"" if data.endswith((b"\n", b"\r")) else lines.pop()
        for line in lines:
            yield line
    if pending:
        yield pending


class OpenAIProvider(Provider):
    name = "openai"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings.openai_model)
        self.settings = settings
        self._client: openai.AsyncOpenAI | None = None

    async def start(self) -> None:
        s = self.settings
        key = s.openai_api_key.get_secret_value() if s.openai_api_key else ""
        if not key:
            # Local servers (vLLM, Ollama, llama.cpp) accept any key; OpenAI will answer 401,
            # which callers then see as a 502 naming this provider.
            log.warning("OPENAI_API_KEY is not set; sending a placeholder key")
        backstop = max(s.upstream_first_token_timeout, s.upstream_idle_timeout)
        self._client = openai.AsyncOpenAI(
            api_key=key or "not-set",
            base_url=s.openai_base_url,
            # Retries and first-token/idle timeouts are ours (assistant.generation), so the
            # client only bounds connecting; its read timeout is a backstop.
            max_retries=0,
            timeout=httpx2.Timeout(
                connect=s.upstream_connect_timeout,
                read=backstop + s.upstream_connect_timeout,
                write=s.upstream_connect_timeout,
                pool=s.upstream_connect_timeout,
            ),
        )
        log.info("openai provider: %s, model %s", s.openai_base_url, s.openai_model)
        await super().start()

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()

    async def open(self, messages: list[ChatMessage], params: GenerationParams) -> TokenStream:
        return self._stream(message_dicts(messages), params)

    def _map_error(self, exc: Exception) -> AssistantError:
        s = self.settings
        if isinstance(exc, openai.APIStatusError):
            retry_after = parse_retry_after(exc.response.headers, s.assistant_retry_after)
            detail = error_message(exc.body, exc.message)
            return from_upstream_status(self.name, exc.status_code, detail, retry_after)
        if isinstance(exc, openai.APITimeoutError):
            if isinstance(exc.__cause__, httpx2.ConnectTimeout | httpx2.PoolTimeout):
                return upstream_timeout(self.name, "connection", s.upstream_connect_timeout)
            return upstream_timeout(self.name, "response", s.upstream_first_token_timeout)
        if isinstance(exc, openai.APIConnectionError):
            return upstream_unreachable(self.name, transport_detail(exc))
        if isinstance(exc, httpx2.TransportError):
            return upstream_failed(self.name, f"the connection broke: {transport_detail(exc)}")
        return upstream_failed(self.name, f"{type(exc).__name__}: {exc}")

    async def _stream(
        self, messages: list[dict[str, str]], params: GenerationParams
    ) -> AsyncGenerator[StreamItem, None]:
        assert self._client is not None
        reason: FinishReason | None = None
        usage: Usage | None = None
        body: dict[str, Any] = {
            "model": self.model_id,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        # Unset options stay out of the request: some servers reject explicit nulls.
        if params.max_tokens is not None:
            body["max_tokens"] = params.max_tokens
        if params.temperature is not None:
            body["temperature"] = params.temperature
        if params.top_p is not None:
            body["top_p"] = params.top_p
        if params.stop:
            body["stop"] = list(params.stop)
        try:
            # The client's plain `post` (the SDK's documented way to send a custom request),
            # not `chat.completions.create`: create runs the SDK's type-driven transform over
            # every message (~0.11 ms each, most of the time to first token with a long
            # history) on messages our API has already validated. Authentication (the same
            # `security` create passes), timeouts, retries and status errors are still the
            # client's; `cast_to=httpx2.Response` hands back the open response to read raw.
            # The body goes as `content` (sent as JSON, the client's default content type)
            # encoded by orjson: the client's json.dumps takes ~0.5 us per message, orjson 1/20.
            response = await self._client.post(
                "/chat/completions",
                content=orjson.dumps(body),
                cast_to=httpx2.Response,
                options={"security": {"bearer_auth": True}},
                stream=True,
            )
            try:
                done = False
                async for line in lines_of(response):
                    # Read on to the end of the body after [DONE] (servers end it right
                    # there): leaving it unread makes the pool close the connection, so
                    # every request would open a new one (TCP, and TLS for a remote API).
                    if done or not line.startswith(b"data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == b"[DONE]":
                        done = True
                        continue
                    chunk = orjson.loads(payload)
                    if "error" in chunk:
                        detail = error_message(chunk, "error event")
                        raise upstream_failed(self.name, detail, retryable=False)
                    if chunk.get("usage"):
                        usage = usage_of(chunk["usage"])
                    for choice in chunk.get("choices") or ():
                        text = (choice.get("delta") or {}).get("content")
                        if text:
                            yield text
                        if choice.get("finish_reason"):
                            reason = finish_reason(choice["finish_reason"])
            finally:
                await response.aclose()
        except AssistantError:
            raise
        except (openai.APIError, httpx2.TransportError) as exc:
            raise self._map_error(exc) from exc
        except orjson.JSONDecodeError as exc:
            raise upstream_failed(self.name, f"a chunk was not JSON: {exc}") from exc
        if reason is None:
            raise upstream_failed(self.name, "the stream ended without a finish reason")
        yield Finish(reason, usage)
