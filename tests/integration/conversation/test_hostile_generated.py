"""Generated hostile input against a real conversation server (schemathesis).

Schemathesis draws requests from conversation's own OpenAPI document, valid and invalid ones
(wrong types, missing fields, out-of-range values, junk in path ids), and sends each over HTTP
to a conversation replica in front of assistant and the echoing fake model. Every request
carries the token of one session, MINE; a share of the generated session ids are swapped for
MINE's id (so requests reach the handlers, not just the 404) and a share for the id of
another session, THEIRS (so every route is tried as a cross-session read or write).

Checked for every response: no 5xx, every error is JSON `{"detail", "code"}`, and no request
made with MINE's token ever succeeds on THEIRS. Checked at the end: THEIRS is untouched and no
key in Redis lacks an expiry. The test prints its figures (`-s` shows them).

HOSTILE_EXAMPLES (tests/support/hostile.py) sets the examples per operation and mode.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis
import schemathesis
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode, Response
from schemathesis.checks import not_a_server_error

from tests.integration.conversation.conftest import Fast
from tests.support.conversation import Session, create_session, get_session, send
from tests.support.hostile import (
    EXAMPLES,
    AnyCase,
    Tally,
    all_operations,
    fuzz,
    openapi_schema,
    tallied,
)


@dataclass
class Sessions:
    mine: Session
    theirs: Session
    theirs_before: list[dict[str, object]]
    cross_tries: int = 0
    cross_successes: int = 0


@pytest.fixture(scope="module")
def schema(fast: Fast) -> schemathesis.BaseSchema:
    return openapi_schema(f"{fast.conversation.url}/api/openapi.json")


@pytest.fixture(scope="module")
def tally() -> Iterator[Tally]:
    with tallied("conversation, generated hostile input") as counts:
        yield counts


@pytest.fixture(scope="module")
def sessions(fast: Fast) -> Sessions:
    mine = create_session(fast.conversation, name="mine")
    send(mine, "my first message")
    theirs = create_session(fast.conversation, name="theirs")
    send(theirs, "their secret")
    return Sessions(mine, theirs, get_session(theirs)["messages"])


def error_shape(response: Response) -> None:
    """Every error is JSON `{"detail", "code"}`."""
    if response.status_code < 400:
        return
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.startswith("application/json"), response.content
    body = json.loads(response.content)
    assert isinstance(body, dict) and "detail" in body and isinstance(body["code"], str), body


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_generated_requests(
    schema: schemathesis.BaseSchema,
    fast: Fast,
    sessions: Sessions,
    tally: Tally,
    mode: GenerationMode,
) -> None:
    # Which session id a case gets: as generated, MINE's, or THEIRS (a fixed rotation, so
    # every operation sees all three whatever Hypothesis draws).
    rotation = itertools.cycle(["generated", "mine", "theirs"])

    def call(case: AnyCase) -> None:
        target = next(rotation)
        if "session_id" in (case.path_parameters or {}):
            if target == "mine":
                case.path_parameters["session_id"] = sessions.mine.session_id
            elif target == "theirs":
                case.path_parameters["session_id"] = sessions.theirs.session_id
        else:
            target = "generated"
        response = case.call(base_url=fast.conversation.url, headers=sessions.mine.auth, timeout=30)
        tally.count(response.status_code)
        case.validate_response(response, checks=[not_a_server_error])
        error_shape(response)
        if target == "theirs":
            sessions.cross_tries += 1
            if response.status_code < 400:
                sessions.cross_successes += 1
        if case.method.upper() == "DELETE" and target == "mine" and response.status_code == 204:
            # Keep a live session to aim at.
            sessions.mine = create_session(fast.conversation, name="mine")

    operations = all_operations(schema)
    assert len(operations) >= 15
    for operation in operations:
        try:
            fuzz(operation.as_strategy(generation_mode=mode), EXAMPLES, call)
        except Unsatisfiable:
            # Routes that take no input at all have no invalid request to make.
            if mode is GenerationMode.POSITIVE:
                raise
    assert tally.server_errors() == 0, tally.line("generated")
    assert sessions.cross_successes == 0


def test_nothing_leaked_or_left_behind(fast: Fast, sessions: Sessions, tally: Tally) -> None:
    """Runs after the generated requests (file order)."""
    assert tally.tried > 0
    print(
        f"conversation, cross-session requests: {sessions.cross_tries} tried, "
        f"{sessions.cross_successes} succeeded"
    )
    assert get_session(sessions.theirs)["messages"] == sessions.theirs_before
    r = redis.Redis(port=fast.redis.port, decode_responses=True)
    assert [k for k in r.scan_iter(count=1000) if r.ttl(k) == -1] == []
