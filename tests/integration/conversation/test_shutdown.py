"""A replica asked to stop (SIGTERM, as a rolling restart does) finishes the replies it is
writing before it exits, whether or not their clients are still connected."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from tests.integration.conversation.conftest import SLOW_TOKENS, Slow
from tests.support.conversation import (
    create_session,
    get_session,
    open_stream,
    read_until,
    slow_reply,
    start_replica,
    text_of,
)
from tests.support.servers import Server, wait_until


@pytest.fixture
def leaving(slow: Slow) -> Iterator[Server]:
    """A replica of the slow stack that the test stops; generous grace for a loaded machine."""
    replica = start_replica(slow.redis, slow.assistant.url, SHUTDOWN_GRACE_PERIOD="60")
    yield replica
    replica.stop()


def terminate(server: Server) -> None:
    os.killpg(server.proc.pid, signal.SIGTERM)


def test_a_reply_streaming_at_sigterm_completes_for_its_client(slow: Slow, leaving: Server) -> None:
    session = create_session(leaving)
    with open_stream(session, "POST", "/messages", json={"content": "go"}) as events:
        seen = read_until(events, "delta")
        terminate(leaving)
        seen += read_until(events, "done")
    assert text_of(seen) == slow_reply(SLOW_TOKENS)
    assert seen[-1].json()["status"] == "complete"
    wait_until(lambda: leaving.proc.poll() is not None, 30, "the replica exits once done")
    stored = get_session(session, slow.a)["messages"][-1]
    assert (stored["status"], stored["content"]) == ("complete", slow_reply(SLOW_TOKENS))


def test_a_reply_whose_client_left_still_completes_before_exit(slow: Slow, leaving: Server) -> None:
    session = create_session(leaving)
    with open_stream(session, "POST", "/messages", json={"content": "go"}) as events:
        read_until(events, "delta")
    terminate(leaving)
    wait_until(lambda: leaving.proc.poll() is not None, 30, "the replica exits once done")
    stored = get_session(session, slow.a)["messages"][-1]
    assert (stored["status"], stored["content"]) == ("complete", slow_reply(SLOW_TOKENS))
