"""Search and import on a real Redis Cluster (three masters, three replicas): a browser's
chats lie in many slots, its search index and import records in its own one. Through
conversation's HTTP API: the index built by an import and at query time, queries, a rename,
a deleted chat, an expired one, and every key left with an expiry."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import redis

from conversation.store import digest
from tests.integration.conversation.conftest import echo_stack
from tests.integration.conversation.test_export_import import (
    bundle_of,
    import_twice_at_once,
    small_chat,
)
from tests.integration.conversation.test_history_pages import long_chat
from tests.integration.conversation.test_search import add_chats, chat, search
from tests.support.conversation import KEYS
from tests.support.redis_cluster import Cluster, redis_cluster
from tests.support.servers import Server
from tests.support.sse import iter_events


@dataclass
class ClusterStack:
    cluster: Cluster
    conversation: Server


@pytest.fixture(scope="module")
def stack() -> Iterator[ClusterStack]:
    with redis_cluster() as cluster:
        env = {"REDIS_URL": cluster.url, "REDIS_CLUSTER": "true"}
        with echo_stack(cluster.nodes[0], **env) as fast:
            yield ClusterStack(cluster, fast.conversation)


def masters(cluster: Cluster) -> list[redis.Redis]:
    return [
        redis.Redis(port=node.port, decode_responses=True)
        for node in cluster.nodes
        if node.proc.poll() is None and cluster.role(node) == "master"
    ]


def keys_without_expiry(cluster: Cluster) -> list[str]:
    return [k for r in masters(cluster) for k in r.scan_iter(count=1000) if r.ttl(k) == -1]


def hash_fields(cluster: Cluster, key: str) -> set[str]:
    client = cluster.client()
    try:
        return {str(field) for field in client.hkeys(key)}
    finally:
        client.close()


def send(client: httpx.Client, sid: str, text: str) -> None:
    url = f"/api/sessions/{sid}/messages"
    with client.stream("POST", url, json={"content": text}, timeout=30) as response:
        assert response.status_code == 200, response.read()
        events = list(iter_events(response.iter_lines()))
    assert events[-1].event == "done", events


def test_search_on_a_cluster(stack: ClusterStack) -> None:
    cluster = stack.cluster
    with httpx.Client(base_url=stack.conversation.url) as browser:
        # Enough chats that they fall in every master's slots (40 random ids all miss one of
        # three masters once in ~3 million runs; 13 did once in ~70); the import indexes them.
        chats = [chat(f"cluster chat {i}", f"walrus number {i}", "reply") for i in range(12)]
        chats.append(chat("kettle notes", "the kettle whistles", "tea"))
        chats += [chat(f"other chat {i}", f"nothing to find {i}", "reply") for i in range(27)]
        sids = add_chats(browser, *chats)
        slots = {cluster.master_of(KEYS.session(sid)).port for sid in sids}
        assert len(slots) == 3, "the chats should lie on every master"
        found = search(browser, "walrus")
        assert {r["session_id"] for r in found} == set(sids[:12])
        assert [r["title"] for r in search(browser, "kettle whistle")] == ["kettle notes"]

        # Written by a turn, not indexed until the next query.
        send(browser, sids[3], "octopus garden")
        found = search(browser, "octopus")
        assert [(r["session_id"], r["role"]) for r in found][:1] == [(sids[3], "user")]
        renamed = browser.patch(f"/api/sessions/{sids[5]}", json={"name": "zeppelin"})
        assert renamed.status_code == 200
        assert [(r["session_id"], r["message_id"]) for r in search(browser, "zeppelin")] == [
            (sids[5], None)
        ]

        # Deleted through the API: out of the index at once.
        deleted = browser.delete(f"/api/sessions/{sids[3]}", headers={"X-Requested-With": "fetch"})
        assert deleted.status_code == 204
        assert search(browser, "octopus") == []
        # Expired (its keys gone, as expiry leaves it): the next query takes it out.
        cluster_client = cluster.client()
        try:
            cluster_client.delete(*KEYS.family(sids[12]))
        finally:
            cluster_client.close()
        assert search(browser, "kettle") == []
        assert {r["session_id"] for r in search(browser, "walrus")} == set(sids[:12]) - {sids[3]}
        # The browser's index (one slot) holds the chats left, nothing of the two gone.
        owner = digest(browser.cookies["chat_browser"])
        indexed = hash_fields(cluster, f"{KEYS.prefix}:x:{{{owner}}}:c")
        assert indexed == set(sids) - {sids[3], sids[12]}

    # A Bearer token searches its own chat only, on the cluster too.
    with httpx.Client(base_url=stack.conversation.url) as stranger:
        created = stranger.post("/api/sessions", json={"name": "walrus of my own"}).json()
        auth = {"Authorization": f"Bearer {created['token']}"}
    with httpx.Client(base_url=stack.conversation.url) as client:
        assert [r["session_id"] for r in search(client, "walrus", **auth)] == [
            created["session_id"]
        ]

    assert keys_without_expiry(cluster) == []


def test_two_imports_of_one_file_at_once_on_a_cluster(stack: ClusterStack) -> None:
    """The claims share the browser's slot with its import records."""
    chats = 40
    body = json.dumps(bundle_of([small_chat(i) for i in range(chats)]))
    reports, listed = asyncio.run(import_twice_at_once(stack.conversation.url, body))
    sources = [chat["source"] for report in reports for chat in report["imported"]]
    assert len(sources) == len(set(sources)) == chats
    assert listed == chats + 1
    assert keys_without_expiry(stack.cluster) == []


def test_history_pages_around_and_after_a_message_on_a_cluster(stack: ClusterStack) -> None:
    with httpx.Client(base_url=stack.conversation.url) as browser:
        response = browser.post("/api/import", json=long_chat())
        [made] = response.json()["imported"]
        url = f"/api/sessions/{made['session_id']}"
        around = browser.get(url, params={"around": "p20", "limit": 4}).json()
        assert [m["id"] for m in around["messages"]] == ["p18", "p19", "p20", "p21"]
        after = browser.get(url, params={"after": "p21", "limit": 2}).json()
        assert [m["id"] for m in after["messages"]] == ["p22", "p23"]
        assert after["has_newer"]
        assert browser.get(url, params={"around": "p20b"}).status_code == 409
