"""Conversation on a real Redis Cluster (three masters, three replicas), two replicas of
conversation: the core flows, the tutorials' routes, replies orphaned by a replica killed
mid-reply, and a master killed mid-reply."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import redis

from tests.integration.conversation.conftest import SLOW_TOKENS
from tests.support.conversation import (
    KEYS,
    Session,
    create_session,
    get_session,
    kill,
    open_stream,
    read_until,
    send,
    slow_reply,
    start_assistant_for,
    start_replica,
    text_of,
)
from tests.support.metrics import scrape
from tests.support.redis_cluster import Cluster, redis_cluster
from tests.support.servers import Server, start_fake_upstream, wait_until
from tests.support.sse import iter_events

FULL = slow_reply(SLOW_TOKENS)


@dataclass
class ClusterStack:
    cluster: Cluster
    assistant: Server
    env: dict[str, str]
    a: Server
    b: Server


@pytest.fixture(scope="module")
def stack() -> Iterator[ClusterStack]:
    with redis_cluster() as cluster:
        started: list[Server] = []
        try:
            upstream = start_fake_upstream(FAKE_TOKENS=str(SLOW_TOKENS), FAKE_DELAY_MS="40")
            started.append(upstream)
            assistant = start_assistant_for(upstream)
            started.append(assistant)
            env = {"REDIS_URL": cluster.url, "REDIS_CLUSTER": "true"}
            for _ in range(2):
                started.append(start_replica(cluster.nodes[0], assistant.url, **env))
            yield ClusterStack(cluster, assistant, env, started[-2], started[-1])
        finally:
            for server in reversed(started):
                server.stop()


def all_keys(cluster: Cluster) -> list[tuple[str, int]]:
    """Every key on every master, with its TTL."""
    found = []
    for node in cluster.nodes:
        if node.proc.poll() is not None or cluster.role(node) != "master":
            continue
        r = redis.Redis(port=node.port, decode_responses=True)
        found += [(k, int(r.ttl(k))) for k in r.scan_iter(count=1000)]
    return found


def test_send_resume_on_the_other_replica_cancel_regenerate_delete(stack: ClusterStack) -> None:
    with httpx.Client(base_url=stack.a.url) as browser:
        created = browser.post("/api/sessions", json={"name": "on a cluster"})
        assert created.status_code == 201, created.text
        sid, token = created.json()["session_id"], created.json()["token"]
        assert [s["session_id"] for s in browser.get("/api/sessions").json()["sessions"]] == [sid]
    session = create_session(stack.a)
    with open_stream(session, "POST", "/messages", json={"content": "go"}) as events:
        seen = read_until(events, "delta")
    mid = seen[1].json()["message_id"]
    # Resumed on the other replica, after the last event the client saw.
    url = session.url(f"/messages/{mid}/stream", stack.b)
    headers = {**session.auth, "Last-Event-ID": str(seen[-1].id)}
    with httpx.stream("GET", url, headers=headers, timeout=60) as resumed:
        rest = list(iter_events(resumed.iter_lines()))
    assert text_of(seen) + text_of(rest) == FULL
    assert get_session(session, stack.b)["messages"][-1]["content"] == FULL

    with open_stream(session, "POST", "/regenerate") as events:
        start = read_until(events, "delta")[0].json()["message_id"]
        stopped = httpx.post(
            session.url(f"/messages/{start}/cancel", stack.b), headers=session.auth, timeout=30
        )
        assert stopped.status_code == 200, stopped.text
        assert stopped.json()["status"] == "cancelled"
    partial = stopped.json()["content"]
    with open_stream(session, "POST", f"/messages/{start}/continue", stack.b) as events:
        # The fake model says its whole reply again, after the text that was kept.
        assert read_until(events, "done")[-1].json()["content"] == partial + FULL

    deleted = httpx.delete(session.url(server=stack.b), headers=session.auth)
    assert deleted.status_code == 204
    assert not [k for k, _ in all_keys(stack.cluster) if session.session_id in k]
    assert [k for k, ttl in all_keys(stack.cluster) if ttl == -1] == []
    del sid, token


def test_round_trips_to_the_cluster_are_timed_per_script(stack: ClusterStack) -> None:
    name = "chatstack_redis_latency_seconds_count"
    before = scrape(stack.a)
    session = create_session(stack.a)
    assert send(session, "timed")[-1].event == "done"
    after = scrape(stack.a)
    for script in ("create", "begin_turn", "finish"):
        assert after.total(name, command=script) > before.total(name, command=script), script


def test_the_tutorials_routes(stack: ClusterStack) -> None:
    base = stack.a.url
    token = httpx.post(f"{base}/token", params={"name": "tutorial"}).json()["token"]
    turn = httpx.post(f"{stack.b.url}/chat/", json={"message": "hi"}, timeout=60)
    assert turn.status_code == 200, turn.text
    history = httpx.get(f"{stack.b.url}/refresh_token", params={"token": token})
    assert history.status_code == 200 and history.json()["name"] == "tutorial"


def orphan(stack: ClusterStack, session: Session) -> str:
    """A reply left 'streaming' by a replica killed while writing it, once its lease has
    lapsed; its id."""
    sid = session.session_id
    doomed = start_replica(stack.cluster.nodes[0], stack.assistant.url, **stack.env)
    client = stack.cluster.client()
    try:
        with open_stream(session, "POST", "/messages", doomed, json={"content": "lost"}) as events:
            mid = str(read_until(events, "delta")[1].json()["message_id"])
            stream = KEYS.stream(sid, mid)
            wait_until(lambda: client.exists(stream) == 1, 30, "the first text is in Redis")
            kill(doomed)
        lock = f"{KEYS.session(sid)}:g"
        wait_until(lambda: not client.exists(lock), 30, "the dead writer's lease lapses")
    finally:
        doomed.stop()
        client.close()
    return mid


def test_orphaned_replies_are_interrupted_and_old_streams_dropped(stack: ClusterStack) -> None:
    session = create_session(stack.a)
    sid = session.session_id
    client = stack.cluster.client()
    try:
        assert send(session, "first")[-1].event == "done"
        first = get_session(session)["messages"][-1]["id"]
        assert client.exists(KEYS.stream(sid, first))  # kept for resuming until the next turn

        # Found by a history read on a replica that never saw the reply start.
        lost = orphan(stack, session)
        assert not client.exists(KEYS.stream(sid, first))  # the orphan's turn dropped it
        reply = get_session(session, stack.b)["messages"][-1]
        assert (reply["id"], reply["status"]) == (lost, "interrupted")
        assert reply["content"] and FULL.startswith(reply["content"])
        ended = client.xrevrange(KEYS.stream(sid, lost), count=1)
        assert ended and [fields for _, fields in ended] == [{"k": "interrupted"}]

        # Found by the next turn's start, which drops its stream once it is interrupted.
        lost = orphan(stack, session)
        assert send(session, "after", stack.a)[-1].event == "done"
        reply = next(m for m in get_session(session, stack.b)["messages"] if m["id"] == lost)
        assert reply["status"] == "interrupted"
        assert reply["content"] and FULL.startswith(reply["content"])
        assert not client.exists(KEYS.stream(sid, lost))
    finally:
        client.close()
    assert [k for k, ttl in all_keys(stack.cluster) if ttl == -1] == []


def test_a_master_killed_mid_reply_fails_over_and_nothing_acknowledged_is_lost(
    stack: ClusterStack,
) -> None:
    session = create_session(stack.a)
    master = stack.cluster.master_of(KEYS.session(session.session_id))
    with open_stream(session, "POST", "/messages", json={"content": "kept"}) as events:
        seen = read_until(events, "delta")
        assert seen[0].event == "user"  # acknowledged: stored before the model was called
        os.killpg(master.proc.pid, signal.SIGKILL)
        master.proc.wait()
        seen += read_until(events, "done")
    assert text_of(seen) == FULL
    wait_until(stack.cluster.healthy, 60, "a replica takes over the dead master's slots")
    messages = get_session(session, stack.b)["messages"]
    assert [(m["role"], m["content"]) for m in messages] == [("user", "kept"), ("assistant", FULL)]
    assert send(session, "after the failover", stack.b)[-1].event == "done"
