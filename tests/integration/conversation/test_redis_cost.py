"""What a turn costs Redis: two round trips outside streaming, batched append-only stream
writes, and not one event held back from the connected client for them."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol, cast

import pytest
import redis

from conversation import redis_scripts
from conversation.limits import ADMIT, RELEASE, RENEW
from tests.support.conversation import KEYS, create_session, send, start_replica, text_of
from tests.support.servers import Server, start_fake_upstream, start_redis

TOKENS = 2000
# What XRANGE returns from a client with decode_responses=True (redis-py types it as bytes | str).
StreamEntries = list[tuple[str, dict[str, str]]]


class Monitor(Protocol):
    """The part of redis-py's untyped `Redis.monitor()` result this module uses."""

    def __enter__(self) -> Monitor: ...
    def __exit__(self, *exc: object) -> None: ...
    def listen(self) -> Iterator[dict[str, object]]: ...


@dataclass
class Bench:
    redis: Server
    conversation: Server


@pytest.fixture(scope="module")
def bench() -> Iterator[Bench]:
    started: list[Server] = []
    try:
        db = start_redis()
        started.append(db)
        upstream = start_fake_upstream(FAKE_TOKENS=str(TOKENS))
        started.append(upstream)
        # Straight at the fake model: only conversation's own Redis traffic is measured.
        conversation = start_replica(db, upstream.url)
        started.append(conversation)
        yield Bench(db, conversation)
    finally:
        for server in reversed(started):
            server.stop()


def top_level_commands(db: Server, action: object) -> list[list[str]]:
    """Every command sent to Redis while `action()` runs, except those run inside scripts."""
    client = redis.Redis(port=db.port, decode_responses=True)
    seen: list[list[str]] = []
    ready = threading.Event()

    def watch() -> None:
        with cast(Callable[[], Monitor], client.monitor)() as monitor:
            ready.set()
            for entry in monitor.listen():
                command = str(entry["command"]).split(" ")
                if command == ["ECHO", "end-of-turn"]:
                    return
                # A new pooled connection's handshake is not part of the turn.
                handshake = command[0] in ("HELLO", "CLIENT", "MONITOR")
                if entry.get("client_type") != "lua" and not handshake:
                    seen.append(command)

    watcher = threading.Thread(target=watch)
    watcher.start()
    ready.wait(10)
    assert callable(action)
    action()
    client.echo("end-of-turn")
    watcher.join(10)
    return seen


def test_a_turn_costs_two_round_trips_plus_batched_stream_writes(bench: Bench) -> None:
    session = create_session(bench.conversation)
    send(session, "warm up")  # scripts are loaded once per process
    events: list[object] = []
    commands = top_level_commands(bench.redis, lambda: events.extend(send(session, "go")))
    flush_sha = hashlib.sha1(redis_scripts.FLUSH.encode()).hexdigest()
    flushes = [c for c in commands if len(c) > 1 and c[1] == flush_sha]
    limits = [c for c in commands if len(c) > 3 and c[3].startswith("chat:l:")]
    usage = [c for c in commands if len(c) > 3 and c[3].startswith("chat:u:")]
    others = [c for c in commands if c not in flushes + limits + usage]
    # Start the turn (its credentials checked, the chat's model read by the same script)
    # and finish the reply.
    assert len(others) == 2, others
    # The reply's usage: a script per identity (here the token's chat), sent beside the
    # reply's store.
    assert len(usage) == 1, usage
    # The per-client limits: a script per identity (the address and the token's session)
    # to admit the turn, sent together (one round trip), and as many to release it, sent
    # together while the reply is stored (no round trip more before `done`). Their lease
    # is renewed only along with a stream write that renews the generation's.
    sha = {hashlib.sha1(s.encode()).hexdigest(): s for s in (ADMIT, RELEASE, RENEW)}
    assert sorted(sha[c[1]] for c in limits if sha[c[1]] != RENEW) == sorted(
        [ADMIT, ADMIT, RELEASE, RELEASE]
    )
    # The stream is written in batches: far fewer writes than tokens (none at all when the
    # reply ends before its oldest text is STREAM_UNWATCHED_FLUSH_MS old).
    assert len(flushes) < TOKENS / 10
    # ...while the connected client got every token as its own event, at once.
    deltas = [e for e in events if getattr(e, "event", "") == "delta"]
    assert len(deltas) == TOKENS


def test_the_stream_holds_each_piece_of_text_once(bench: Bench) -> None:
    session = create_session(bench.conversation)
    events = send(session, "go")
    reply = events[-1].json()
    db = redis.Redis(port=bench.redis.port, decode_responses=True)
    entries = cast(StreamEntries, db.xrange(KEYS.stream(session.session_id, reply["id"])))
    texts = [fields["x"] for _, fields in entries if "x" in fields]
    assert "".join(texts) == reply["content"] == text_of(events)
    ends = [int(eid.split("-")[0]) for eid, fields in entries if "x" in fields]
    assert ends == [len("".join(texts[: i + 1])) for i in range(len(texts))]
    assert entries[-1] == (f"{len(reply['content'])}-1", {"k": "complete"})
