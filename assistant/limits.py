"""Checks beyond the request schema: limits from settings (an error names the limit) and
text that is not valid Unicode."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistant.config import Settings
from assistant.errors import AssistantError, invalid_request, limit_exceeded
from common.protocol import ChatCompletionRequest


def check_unicode(request: ChatCompletionRequest) -> None:
    """Refuse lone surrogates (`"\\ud800"`): JSON may escape them and Python accepts them,
    but they are no characters, so no tokenizer, upstream or UTF-8 encoder can take them."""
    texts = [(f"messages.{i}.content", m.content) for i, m in enumerate(request.messages)]
    texts += [("stop", stop) for stop in request.stop_list()]
    for param, text in texts:
        if text.isascii():
            continue
        try:
            text.encode()
        except UnicodeEncodeError:
            raise invalid_request(
                f"{param}: contains a lone surrogate (\\ud800-\\udfff), which is not Unicode text",
                param,
            ) from None


# Stop strings are checked against every token the local model and text generation write
# (assistant.stops), so their count and length bound the work per token. OpenAI itself
# takes at most 4 stop strings.
MAX_STOPS = 16
MAX_STOP_CHARS = 256


def check_stops(request: ChatCompletionRequest) -> None:
    stops = request.stop_list()
    if len(stops) > MAX_STOPS:
        raise limit_exceeded(
            400,
            "too_many_stops",
            f"The request has {len(stops)} stop strings; at most {MAX_STOPS} are allowed.",
            "stop",
        )
    if any(len(stop) > MAX_STOP_CHARS for stop in stops):
        raise limit_exceeded(
            400,
            "stop_too_long",
            f"A stop string is longer than {MAX_STOP_CHARS} characters.",
            "stop",
        )


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
    check_stops(request)


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
    A body with a Content-Length is judged by it (the server holds the client to it); a
    chunked one is read here first, so the refusal is this 413 and not whatever the app's
    body parser makes of a read that fails halfway.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                if value.isdigit() and int(value) > self.limit:
                    await self._refuse(send)
                else:
                    await self.app(scope, receive, send)
                return
        parts: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left before the end of its body: nobody to answer
            part = message.get("body", b"")
            received += len(part)
            if received > self.limit:
                await self._refuse(send)
                return
            parts.append(part)
            if not message.get("more_body", False):
                break
        whole: Message = {"type": "http.request", "body": b"".join(parts), "more_body": False}
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: the disconnect, when it comes
            replayed = True
            return whole

        await self.app(scope, replay, send)

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
