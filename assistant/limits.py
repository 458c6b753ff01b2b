"""Request limits from settings: refuse oversized work with an error that names the limit."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistant.config import Settings
from assistant.errors import AssistantError, limit_exceeded
from common.protocol import ChatCompletionRequest


def check_limits(request: ChatCompletionRequest, settings: Settings) -> None:
    count = len(request.messages)
    if count > settings.assistant_max_messages:
        raise limit_exceeded(
            400,
            "too_many_messages",
            f"The request has {count} messages; ASSISTANT_MAX_MESSAGES allows at most "
            f"{settings.assistant_max_messages}.",
            "messages",
        )
    chars = sum(len(m.content) for m in request.messages)
    if chars > settings.assistant_max_input_chars:
        raise limit_exceeded(
            413,
            "input_too_long",
            f"The messages have {chars} characters; ASSISTANT_MAX_INPUT_CHARS allows at most "
            f"{settings.assistant_max_input_chars}.",
            "messages",
        )
    if request.max_tokens is not None and request.max_tokens > settings.assistant_max_tokens:
        raise limit_exceeded(
            400,
            "max_tokens_too_large",
            f"max_tokens is {request.max_tokens}; ASSISTANT_MAX_TOKENS allows at most "
            f"{settings.assistant_max_tokens}.",
            "max_tokens",
        )


def body_too_large(limit: int) -> AssistantError:
    return limit_exceeded(
        413,
        "request_too_large",
        f"The request body is larger than ASSISTANT_MAX_BODY_BYTES ({limit} bytes).",
        "body",
    )


class BodySizeLimit:
    """Refuse request bodies over the limit before they are read into memory.

    A pure ASGI middleware (not BaseHTTPMiddleware) so streamed responses pass untouched.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await self._refuse(send)
                return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise body_too_large(self.limit)
            return message

        await self.app(scope, limited_receive, send)

    async def _refuse(self, send: Send) -> None:
        error = body_too_large(self.limit)
        body = error.json()
        await send(
            {
                "type": "http.response.start",
                "status": error.status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
