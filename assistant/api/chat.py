"""`POST /v1/chat/completions`: OpenAI's chat completions, streamed or whole."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import Response

from assistant import generation
from assistant.api.deps import RegistryDep, SettingsDep
from assistant.config import Settings
from assistant.errors import not_ready
from assistant.limits import check_limits, check_unicode
from assistant.providers.base import GenerationParams
from assistant.streaming import ChunkEncoder, encode
from common.event_stream import ClientDisconnected, EventStreamResponse, cancel_on_disconnect
from common.protocol import (
    ChatCompletion,
    ChatCompletionRequest,
    ChatMessage,
    Choice,
    ErrorResponse,
    new_completion_id,
    now,
)

router = APIRouter()

ERRORS: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in {
        400: "invalid request, unknown model (the message lists the valid ones) or over a limit",
        401: "missing or wrong ASSISTANT_API_KEY",
        413: "input over ASSISTANT_MAX_INPUT_CHARS or ASSISTANT_MAX_BODY_BYTES",
        429: "the provider is rate limiting (see Retry-After)",
        502: "the provider failed or rejected the assistant's credentials",
        503: "provider unreachable or at its concurrency cap, model still loading or local "
        "queue full (see Retry-After)",
        504: "the provider was too slow (connect, first token or between tokens)",
    }.items()
}

STREAM_DOC: dict[str, object] = {
    "description": "`chat.completion`, or with `stream: true` server-sent "
    "`chat.completion.chunk` events ending with `data: [DONE]`",
    "content": {"text/event-stream": {}},
}


def with_system_prompt(messages: list[ChatMessage], settings: Settings) -> list[ChatMessage]:
    """The operator's prompt always comes first; the caller's own system messages stay where
    the caller put them, after it, so they can add instructions but never remove the
    operator's. Providers whose chat template allows one system message merge them."""
    prompt = settings.assistant_system_prompt
    if not prompt:
        return messages
    return [ChatMessage(role="system", content=prompt), *messages]


def generation_params(body: ChatCompletionRequest, model: str) -> GenerationParams:
    return GenerationParams(
        model=model,
        max_tokens=body.max_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
        stop=tuple(body.stop_list()),
        user=body.user,
    )


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses={200: STREAM_DOC, **ERRORS},
    summary="Create a chat completion (OpenAI-compatible)",
)
async def chat_completions(
    body: ChatCompletionRequest,
    request: Request,
    settings: SettingsDep,
    registry: RegistryDep,
) -> Response:
    check_limits(body, settings)
    check_unicode(body)
    served = registry.resolve(body.model)
    upstream = served.upstream
    provider = upstream.provider_for(served.id)
    if not provider.ready:
        raise not_ready(provider.name, settings.assistant_retry_after)
    messages = with_system_prompt(body.messages, settings)
    policy = upstream.policy
    params = generation_params(body, served.id)
    try:
        async with cancel_on_disconnect(request.receive):
            began = time.perf_counter()
            started = await upstream.start(served.id, messages, params)
            request.app.state.metrics.upstream_latency.labels(upstream.name).observe(
                time.perf_counter() - began
            )
            if not body.stream:
                text, finish = await generation.collect(provider, started, policy)
    except ClientDisconnected:
        return Response(status_code=499)

    if body.stream:
        include_usage = body.stream_options is not None and body.stream_options.include_usage
        encoder = ChunkEncoder(new_completion_id(), served.id, now())
        items = generation.follow(provider, started, policy)
        count_error = request.app.state.metrics.count_error
        return EventStreamResponse(
            encode(items, encoder, include_usage, provider.name, count_error)
        )

    completion = ChatCompletion(
        model=served.id,
        choices=[
            Choice(
                message=ChatMessage(role="assistant", content=text),
                finish_reason=finish.reason,
            )
        ],
        usage=finish.usage,
    )
    return Response(completion.model_dump_json(), media_type="application/json")
