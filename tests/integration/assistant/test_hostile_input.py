"""Hostile input against a real assistant server: generated requests, then a hand-written corpus.

Schemathesis generates requests from assistant's own OpenAPI document, valid ones and
invalid ones (wrong types, missing fields, values out of range), and sends each over HTTP
to the assistant (API key, small limits) in front of the fake upstream, which answers
normally throughout: any 5xx is then assistant's own bug. Every response must conform to
the document (status, content type, body schema) and every error must be JSON in OpenAI's
error shape. The test prints how many requests it tried and how many server errors it got.

HOSTILE_EXAMPLES sets the examples per operation and mode (valid, invalid) for the chat
route, a tenth of it for each of the others; the default, 40, is a quick run of about 100
requests. The full run is `HOSTILE_EXAMPLES=500`: over 1,000 requests, a few minutes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, CheckContext, GenerationMode, Response
from schemathesis import Case as GenericCase
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from common.protocol import ChatCompletion, ErrorResponse
from tests.support.fake_control import FakeControl
from tests.support.hostile import EXAMPLES, AnyCase, Tally, fuzz, openapi_schema, tallied
from tests.support.servers import Server

Case = GenericCase[APIOperation[Any, Any, Any, Any]]
KEY = {"Authorization": "Bearer s3cret"}  # secured_assistant's ASSISTANT_API_KEY
CHAT = ("/v1/chat/completions", "POST")


def openai_error_shape(ctx: CheckContext, response: Response, case: AnyCase) -> bool | None:
    """Every error is JSON in OpenAI's shape: `{"error": {"message", "type", ...}}`."""
    if response.status_code < 400:
        return None
    assert response.headers.get("content-type", [""])[0].startswith("application/json")
    ErrorResponse.model_validate_json(response.content)
    return True


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    openai_error_shape,
]


@pytest.fixture(scope="module")
def schema(secured_assistant: Server) -> schemathesis.BaseSchema:
    return openapi_schema(f"{secured_assistant.url}/openapi.json")


@pytest.fixture(scope="module")
def tally() -> Iterator[Tally]:
    with tallied("hostile input, generated") as counts:
        yield counts


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_generated_requests(
    schema: schemathesis.BaseSchema,
    secured_assistant: Server,
    upstream: FakeControl,
    tally: Tally,
    mode: GenerationMode,
) -> None:
    def call(case: AnyCase) -> None:
        response = case.call(base_url=secured_assistant.url, headers=KEY, timeout=30)
        tally.count(response.status_code)
        case.validate_response(response, checks=CHECKS)

    operations = [result.ok() for result in schema.get_all_operations() if isinstance(result, Ok)]
    assert len(operations) >= 5, "chat, models and the three health routes"
    for operation in operations:
        chat = (operation.path, operation.method.upper()) == CHAT
        examples = EXAMPLES if chat else max(1, EXAMPLES // 10)
        try:
            fuzz(operation.as_strategy(generation_mode=mode), examples, call)
        except Unsatisfiable:
            # A route that takes no input (the health probes) has no invalid request.
            if chat or mode is GenerationMode.POSITIVE:
                raise
    assert tally.server_errors() == 0, tally.line("generated")


# --- the hand-written corpus --------------------------------------------------------------

JSON = {"Content-Type": "application/json"}


def body(**fields: str) -> bytes:
    """A chat request as raw JSON text, each field's value given as raw JSON too."""
    fields = {"messages": '[{"role":"user","content":"hi"}]', **fields}
    return ("{" + ",".join(f'"{k}":{v}' for k, v in fields.items()) + "}").encode()


def said(content: str) -> bytes:
    return body(messages=f'[{{"role":"user","content":"{content}"}}]')


def nested(depth: int) -> bytes:
    return b'{"messages":' + b"[" * depth + b"]" * depth + b"}"


def chunks(data: bytes, size: int = 1000) -> Iterator[bytes]:
    for at in range(0, len(data), size):
        yield data[at : at + size]


@dataclass(frozen=True)
class Attack:
    body: bytes | Callable[[], Iterator[bytes]]
    status: int
    headers: dict[str, str] = field(default_factory=lambda: {**JSON, **KEY})
    method: str = "POST"
    path: str = "/v1/chat/completions"
    # Sent to the assistant with the default limits (2 MB bodies) and no API key.
    roomy: bool = False


def authorized(value: str) -> dict[str, str]:
    return {**JSON, "Authorization": value}


CORPUS = {
    # Lone surrogates, written as JSON escapes: valid JSON, invalid Unicode.
    "lone high surrogate": Attack(said("\\ud800"), 400),
    "lone low surrogate": Attack(said("ab\\udfffcd"), 400),
    "lone surrogate in stop": Attack(body(stop='["\\ud800"]'), 400),
    "lone surrogate, streamed": Attack(
        body(messages='[{"role":"user","content":"\\udbff"}]', stream="true"), 400
    ),
    "surrogate pair (an emoji)": Attack(said("\\ud83d\\ude00"), 200),
    # NUL and other control characters.
    "escaped NUL": Attack(said("a\\u0000b"), 200),
    "raw NUL byte in a string": Attack(said("a\x00b"), 400),
    "raw control character": Attack(said("a\x01b"), 400),
    "invalid UTF-8": Attack(b'{"messages":[{"role":"user","content":"\xff\xfe"}]}', 400),
    # Numbers.
    "max_tokens of 5000 digits": Attack(body(max_tokens="9" * 5000), 400, roomy=True),
    "max_tokens 1e400": Attack(body(max_tokens="1e400"), 400),
    "max_tokens past int64": Attack(body(max_tokens="99999999999999999999"), 400),
    "max_tokens negative": Attack(body(max_tokens="-1"), 400),
    "temperature NaN": Attack(body(temperature="NaN"), 400),
    "temperature Infinity": Attack(body(temperature="Infinity"), 400),
    "temperature -Infinity": Attack(body(temperature="-Infinity"), 400),
    "temperature underflows to 0": Attack(body(temperature="1e-400"), 200),
    "top_p tiny": Attack(body(top_p="1e-300"), 200),
    # Deeply nested JSON.
    "messages nested 100,000 deep": Attack(nested(100_000), 400, roomy=True),
    "ignored field nested 100 deep": Attack(body(extra="[" * 100 + "]" * 100), 200),
    "ignored field nested 100,000 deep": Attack(
        body(extra="[" * 100_000 + "]" * 100_000), 400, roomy=True
    ),
    # Wrong types.
    "messages a string": Attack(body(messages='"hi"'), 400),
    "messages an object": Attack(body(messages='{"role":"user"}'), 400),
    "content parts": Attack(body(messages='[{"role":"user","content":[{"type":"text"}]}]'), 400),
    "content null": Attack(body(messages='[{"role":"user","content":null}]'), 400),
    "content a number": Attack(body(messages='[{"role":"user","content":7}]'), 400),
    "role null": Attack(body(messages='[{"role":null,"content":"hi"}]'), 400),
    "message a string": Attack(body(messages='["hi"]'), 400),
    "stream a word": Attack(body(stream='"often"'), 400),
    "stream_options a list": Attack(body(stream_options="[]"), 400),
    "stop an object": Attack(body(stop="{}"), 400),
    "stop numbers": Attack(body(stop="[1,2]"), 400),
    "max_tokens a word": Attack(body(max_tokens='"five"'), 400),
    "model a list": Attack(body(model="[]"), 400),
    # Bodies that are no request at all.
    "empty body": Attack(b"", 400),
    "null": Attack(b"null", 400),
    "a list": Attack(b"[]", 400),
    "an empty object": Attack(b"{}", 400),
    "a string": Attack(b'"hi"', 400),
    "cut-off JSON": Attack(b'{"messages":[{"role":"us', 400),
    "two JSON documents": Attack(body() + body(), 400),
    # Over the limits (secured_assistant: 3 messages, 200 characters, 50 tokens, 4096 bytes).
    "too many messages": Attack(
        body(messages="[" + ",".join(['{"role":"user","content":"a"}'] * 4) + "]"), 400
    ),
    "too much text": Attack(said("a" * 201), 413),
    "max_tokens over the limit": Attack(body(max_tokens="51"), 400),
    "17 stop strings": Attack(body(stop="[" + ",".join(['"x"'] * 17) + "]"), 400),
    "a 257-character stop string": Attack(body(stop=f'"{"x" * 257}"'), 400),
    "16 stop strings of 256 characters": Attack(
        body(stop="[" + ",".join([f'"{"x" * 256}"'] * 16) + "]"), 200, roomy=True
    ),
    "oversize body": Attack(said("a" * 5000), 413),
    "oversize body, chunked": Attack(lambda: chunks(said("a" * 20_000)), 413),
    # Content types.
    "text/plain": Attack(body(), 400, {"Content-Type": "text/plain", **KEY}),
    "form encoded": Attack(
        b"messages=hi", 400, {"Content-Type": "application/x-www-form-urlencoded", **KEY}
    ),
    "multipart": Attack(
        b"--x\r\n\r\nhi\r\n--x--\r\n",
        400,
        {"Content-Type": "multipart/form-data; boundary=x", **KEY},
    ),
    "no content type": Attack(body(), 400, dict(KEY)),
    # Authorization.
    "no Authorization": Attack(body(), 401, dict(JSON)),
    "Bearer without a token": Attack(body(), 401, authorized("Bearer")),
    "Basic scheme": Attack(body(), 401, authorized("Basic czNjcmV0")),
    "wrong key": Attack(body(), 401, authorized("Bearer s3cretX")),
    "key prefix": Attack(body(), 401, authorized("Bearer s3cre")),
    "two keys": Attack(body(), 401, authorized("Bearer s3cret, Bearer s3cret")),
    "8 KB key": Attack(body(), 401, authorized("Bearer " + "k" * 8000)),
    "non-ASCII key": Attack(body(), 401, authorized("Bearer s\u00e9cret")),
    # Routes and methods.
    "GET on chat": Attack(b"", 405, method="GET"),
    "DELETE on chat": Attack(b"", 405, method="DELETE"),
    "unknown path": Attack(body(), 404, path="/v1/completions"),
}


@pytest.fixture(scope="module")
def corpus_tally() -> Iterator[Tally]:
    with tallied("hostile input, hand-written corpus") as counts:
        yield counts


@pytest.mark.parametrize("name", list(CORPUS))
def test_corpus(
    secured_assistant: Server,
    assistant: Server,
    upstream: FakeControl,
    corpus_tally: Tally,
    name: str,
) -> None:
    attack = CORPUS[name]
    server = assistant if attack.roomy else secured_assistant
    content = attack.body() if callable(attack.body) else attack.body
    headers = {k.encode(): v.encode("latin-1") for k, v in attack.headers.items()}
    response = httpx.request(
        attack.method,
        f"{server.url}{attack.path}",
        content=content,
        headers=headers,
        timeout=30,
    )
    corpus_tally.count(response.status_code)
    assert response.status_code == attack.status, response.text
    assert response.headers["content-type"] == "application/json"
    if response.status_code >= 400:
        ErrorResponse.model_validate_json(response.content)
    else:
        ChatCompletion.model_validate_json(response.content)
