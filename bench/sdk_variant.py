"""Assistant as it would be with its OpenAI-compatible provider on the `openai` SDK: what
`python -m bench.sdk_service` measures the product against. Never the product itself.

The SDK's cheapest way that keeps it in charge of the request: `AsyncOpenAI.post` on its
aiohttp transport (`openai.DefaultAioHttpClient`), the body built by the provider, the
stream read raw by the provider's own `Chunks` (the SDK's typed chunks cost far more,
`python -m bench.sdk_chunks`), its retries off. Run as `bench.sdk_variant:create_app`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import httpx2
import openai
from fastapi import FastAPI

from assistant.app import create_app as create_assistant
from assistant.providers.base import GenerationParams, Provider, StreamItem
from assistant.providers.openai_compatible import Chunks, OpenAIProvider

_clients: dict[int, openai.AsyncOpenAI] = {}


async def _start(self: OpenAIProvider) -> None:
    e = self.endpoint
    timeout = httpx2.Timeout(connect=e.connect_timeout, read=e.read_timeout, write=None, pool=None)
    limits = httpx2.Limits(
        max_connections=e.max_connections,
        max_keepalive_connections=e.max_connections,
        keepalive_expiry=e.keepalive_timeout,
    )
    _clients[id(self)] = openai.AsyncOpenAI(
        api_key=e.api_key or "not-set",
        base_url=e.base_url,
        max_retries=0,
        timeout=timeout,
        http_client=openai.DefaultAioHttpClient(timeout=timeout, limits=limits),
        default_headers={"Accept-Encoding": "identity"},
    )
    await Provider.start(self)


async def _close(self: OpenAIProvider) -> None:
    await _clients.pop(id(self)).close()


async def _stream(
    self: OpenAIProvider, messages: list[dict[str, str]], params: GenerationParams
) -> AsyncGenerator[StreamItem, None]:
    body = self.request_body(messages, params)
    chunks = Chunks(self.name)
    response = await _clients[id(self)].post(
        "/chat/completions", body=body, cast_to=httpx2.Response, stream=True
    )
    assert isinstance(response.stream, httpx2.AsyncByteStream)
    try:
        async for texts in chunks.batches(response.stream):
            yield texts
    finally:
        await response.aclose()
    yield chunks.finish()


def create_app() -> FastAPI:
    OpenAIProvider.start = _start  # type: ignore[method-assign]
    OpenAIProvider.close = _close  # type: ignore[method-assign]
    OpenAIProvider._stream = _stream  # type: ignore[method-assign]
    return create_assistant()
