"""Prometheus metrics of real processes: a chat turn through nginx, then both services'
`GET /metrics` parsed with prometheus-client's parser; and nginx never serves them."""

from __future__ import annotations

import json

import httpx
from websockets.sync.client import connect

from tests.conftest import Stack
from tests.integration.conftest import fake
from tests.support.conversation import create_session, open_stream, read_until, send
from tests.support.metrics import Scrape, scrape
from tests.support.servers import wait_until

MESSAGES = "/api/sessions/{session_id}/messages"


def moved(before: Scrape, after: Scrape, name: str, **labels: str) -> float:
    return after.value(name, **labels) - before.value(name, **labels)


def test_a_chat_turn_moves_both_services_metrics(observed: Stack) -> None:
    # A first turn loads the Lua scripts into this Redis (a NOSCRIPT answer, then again):
    # the turn measured below is the usual one.
    send(create_session(observed.nginx), "warm up")
    conversation_before, assistant_before = (
        scrape(observed.conversation),
        scrape(observed.assistant),
    )
    session = create_session(observed.nginx)
    events = send(session, "count this turn")
    done = events[-1]
    assert done.event == "done", events
    conversation, assistant = scrape(observed.conversation), scrape(observed.assistant)

    def c(name: str, **labels: str) -> float:
        return moved(conversation_before, conversation, name, **labels)

    requests = "chatstack_http_requests_total"
    assert c(requests, method="POST", route="/api/sessions", status="201") == 1
    assert c(requests, method="POST", route=MESSAGES, status="200") == 1
    assert session.session_id not in str(conversation.samples)
    assert c("chatstack_time_to_first_token_seconds_count") == 1
    assert c("chatstack_reply_duration_seconds_count", status="complete") == 1
    assert conversation.value("chatstack_active_generations") == 0
    usage = done.json()["usage"]
    assert c("chatstack_tokens_generated_total", model="fake-model") == usage["completion_tokens"]
    assert usage["completion_tokens"] > 0
    for script in ("begin_turn", "finish"):
        assert c("chatstack_redis_latency_seconds_count", command=script) == 1, script
    # Creating the session is a script too, named as in conversation.redis_scripts.
    assert (
        moved(
            conversation_before,
            conversation,
            "chatstack_redis_latency_seconds_count",
            command="create",
        )
        == 1
    )
    assert c("chatstack_upstream_latency_seconds_count", upstream="assistant") == 1
    # The histogram's buckets hold what its count says.
    first_token_le_inf = conversation.value(
        "chatstack_time_to_first_token_seconds_bucket", le="+Inf"
    )
    assert first_token_le_inf == conversation.value("chatstack_time_to_first_token_seconds_count")

    def a(name: str, **labels: str) -> float:
        return moved(assistant_before, assistant, name, **labels)

    route = "/v1/chat/completions"
    assert a(requests, method="POST", route=route, status="200") == 1
    assert a("chatstack_upstream_latency_seconds_count", upstream="openai") == 1
    assert assistant.total("chatstack_errors_total") == assistant_before.total(
        "chatstack_errors_total"
    )


def test_active_generations_counts_the_replies_being_written(observed: Stack) -> None:
    fake(observed).script({"stall_after": 1})
    session = create_session(observed.nginx)
    before = scrape(observed.conversation)
    with open_stream(session, "POST", "/messages", json={"content": "stall"}) as events:
        start = read_until(events, "delta")
        reply = next(e for e in start if e.event == "start").json()["message_id"]
        assert scrape(observed.conversation).value("chatstack_active_generations") == 1
        cancel = httpx.post(session.url(f"/messages/{reply}/cancel"), headers=session.auth)
        assert cancel.status_code == 200, cancel.text
    wait_until(
        lambda: scrape(observed.conversation).value("chatstack_active_generations") == 0,
        10,
        "the cancelled reply to end",
    )
    after = scrape(observed.conversation)
    assert moved(before, after, "chatstack_reply_duration_seconds_count", status="cancelled") == 1


def test_errors_are_counted_by_the_code_clients_get(observed: Stack) -> None:
    conversation_before, assistant_before = (
        scrape(observed.conversation),
        scrape(observed.assistant),
    )
    session = create_session(observed.nginx)
    gone = httpx.get(f"{observed.nginx.url}/api/sessions/{'0' * 32}", headers=session.auth)
    assert gone.status_code == 404 and gone.json()["code"] == "not_found"
    # The model refuses the key: assistant answers 502, the reply ends with assistant_error.
    fake(observed).script({"status": 401, "message": "Incorrect API key provided"})
    events = send(session, "refused")
    assert events[-1].event == "error" and events[-1].json()["code"] == "assistant_error"
    conversation, assistant = scrape(observed.conversation), scrape(observed.assistant)

    def c(name: str, **labels: str) -> float:
        return moved(conversation_before, conversation, name, **labels)

    assert c("chatstack_errors_total", code="not_found") == 1
    assert c("chatstack_errors_total", code="assistant_error") == 1
    labels = {"method": "GET", "route": "/api/sessions/{session_id}", "status": "404"}
    assert c("chatstack_http_requests_total", **labels) == 1
    assert c("chatstack_reply_duration_seconds_count", status="error") == 1
    assert c("chatstack_time_to_first_token_seconds_count") == 0

    route = "/v1/chat/completions"
    refused = {"method": "POST", "route": route, "status": "502"}
    assert moved(assistant_before, assistant, "chatstack_http_requests_total", **refused) == 1
    errors = assistant.total("chatstack_errors_total") - assistant_before.total(
        "chatstack_errors_total"
    )
    assert errors == 1
    assert assistant.total("chatstack_errors_total", code="upstream_auth_failed") >= 1


def test_nginx_does_not_serve_the_metrics(observed: Stack) -> None:
    direct = httpx.get(f"{observed.conversation.url}/metrics")
    assert direct.status_code == 200 and "chatstack_http_requests_total" in direct.text
    for path in ("/metrics", "/metrics/", "/api/../metrics", "/api/metrics"):
        through = httpx.get(f"{observed.nginx.url}{path}")
        assert "chatstack_" not in through.text, path
        assert "# TYPE" not in through.text, path


def test_errors_after_a_200_are_counted_too(observed: Stack) -> None:
    """A stream that fails mid-reply, and a WebSocket's error frame: their status was fine."""
    conversation_before = scrape(observed.conversation)
    assistant_before = scrape(observed.assistant)
    session = create_session(observed.nginx)
    fake(observed).script({"error_after": 1, "message": "the model crashed"})
    events = send(session, "fail midway through please")
    failed = events[-1]
    assert failed.event == "error", events
    ws_url = session.url("/ws").replace("http://", "ws://") + f"?token={session.token}"
    with connect(ws_url) as ws:
        ws.send("not json")
        assert json.loads(ws.recv(timeout=10))["data"]["code"] == "invalid"
    conversation, assistant = scrape(observed.conversation), scrape(observed.assistant)

    code = failed.json()["code"]  # assistant's code, passed on by conversation
    assert moved(assistant_before, assistant, "chatstack_errors_total", code=code) == 1
    assert moved(conversation_before, conversation, "chatstack_errors_total", code=code) == 1
    assert moved(conversation_before, conversation, "chatstack_errors_total", code="invalid") == 1
