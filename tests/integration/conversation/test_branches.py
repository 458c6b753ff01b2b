"""Branches through the API: edit any user message, regenerate any reply, switch versions,
and the context the model is sent is the active path."""

from __future__ import annotations

from typing import Any

import httpx

from tests.integration.conversation.conftest import Fast, Slow
from tests.support.conversation import (
    Session,
    create_session,
    get_session,
    open_stream,
    read_until,
    send,
)
from tests.support.fake_control import FakeControl
from tests.support.sse import Event, iter_events


def turn(session: Session, method: str, path: str, **body: Any) -> list[Event]:
    with httpx.stream(
        method, session.url(path), json=body, headers=session.auth, timeout=60
    ) as response:
        assert response.status_code == 200, response.read()
        return list(iter_events(response.iter_lines()))


def path_of(detail: dict[str, Any]) -> list[tuple[str, int, int]]:
    return [(m["content"], m["sibling_index"], m["sibling_count"]) for m in detail["messages"]]


def switch(session: Session, mid: str, **body: Any) -> httpx.Response:
    return httpx.patch(session.url(f"/messages/{mid}/active"), json=body, headers=session.auth)


def sent_to_model(fast: Fast) -> list[str]:
    """The user and assistant texts of the last request the fake model received."""
    last = FakeControl(fast.upstream).requests()[-1]["body"]["messages"]
    return [m["content"] for m in last if m["role"] != "system"]


def test_edit_an_earlier_message_then_switch_back_and_forth(fast: Fast) -> None:
    session = create_session(fast.conversation)
    send(session, "one")
    send(session, "two")
    first = get_session(session)["messages"][0]
    events = turn(session, "PATCH", f"/messages/{first['id']}", content="uno")
    assert events[0].event == "user" and events[0].json()["id"] != first["id"]
    assert events[-1].json()["content"] == "Echo: uno"
    assert sent_to_model(fast) == ["uno"]
    assert path_of(get_session(session)) == [("uno", 2, 2), ("Echo: uno", 1, 1)]

    back = switch(session, first["id"])
    assert back.status_code == 200, back.text
    assert path_of(back.json()) == [
        ("one", 1, 2),
        ("Echo: one", 1, 1),
        ("two", 1, 1),
        ("Echo: two", 1, 1),
    ]
    assert path_of(get_session(session)) == path_of(back.json())
    # Switching by position among the siblings, as the UI's arrows do.
    again = switch(session, first["id"], sibling_index=2)
    assert path_of(again.json()) == [("uno", 2, 2), ("Echo: uno", 1, 1)]
    # A message sent now follows the active path, and only it is the model's context.
    send(session, "tres")
    assert sent_to_model(fast) == ["uno", "Echo: uno", "tres"]


def test_regenerate_any_reply_keeps_the_old_one(fast: Fast) -> None:
    session = create_session(fast.conversation)
    send(session, "one")
    send(session, "two")
    old = get_session(session)["messages"][1]
    events = turn(session, "POST", "/regenerate", message_id=old["id"])
    assert events[0].event == "start" and events[-1].event == "done"
    assert sent_to_model(fast) == ["one"]
    messages = get_session(session)["messages"]
    assert path_of({"messages": messages}) == [("one", 1, 1), ("Echo: one", 2, 2)]
    assert messages[1]["id"] == events[-1].json()["id"] != old["id"]
    shown = switch(session, messages[1]["id"], sibling_index=1).json()
    assert [m["id"] for m in shown["messages"]][1] == old["id"]
    assert len(shown["messages"]) == 4


def test_bad_ids_and_positions_are_named(fast: Fast) -> None:
    session = create_session(fast.conversation)
    send(session, "one")
    user, reply = get_session(session)["messages"]
    unknown = switch(session, "0123456789abcdef")
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"
    out_of_range = switch(session, user["id"], sibling_index=3)
    assert out_of_range.status_code == 422
    assert "sibling_index" in out_of_range.json()["detail"]
    negative = switch(session, user["id"], sibling_index=0)
    assert negative.status_code == 422
    assert negative.json()["detail"][0]["loc"][-1] == "sibling_index"
    regen = httpx.post(
        session.url("/regenerate"), json={"message_id": user["id"]}, headers=session.auth
    )
    assert regen.status_code == 409 and "message_id" in regen.json()["detail"]
    edit = httpx.patch(
        session.url(f"/messages/{reply['id']}"), json={"content": "x"}, headers=session.auth
    )
    assert edit.status_code == 409 and "message_id" in edit.json()["detail"]
    gone = httpx.post(session.url("/regenerate"), json={"message_id": "nope"}, headers=session.auth)
    assert gone.status_code == 404 and "message_id" in gone.json()["detail"]
    assert len(get_session(session)["messages"]) == 2  # nothing stored by any of them


def test_switching_is_for_the_sessions_owner_only(fast: Fast) -> None:
    session = create_session(fast.conversation)
    send(session, "mine")
    mid = get_session(session)["messages"][0]["id"]
    other = create_session(fast.conversation)
    url = session.url(f"/messages/{mid}/active")
    assert httpx.patch(url, json={}, headers=other.auth).status_code == 404
    assert httpx.patch(url, json={}).status_code == 401
    base = fast.conversation.url
    with httpx.Client(base_url=base) as browser, httpx.Client(base_url=base) as stranger:
        sid = browser.post("/api/sessions", json={}).json()["session_id"]
        stranger.post("/api/sessions", json={})
        sent = browser.post(f"/api/sessions/{sid}/messages", json={"content": "hi"}, timeout=60)
        assert sent.status_code == 200
        mine = browser.get(f"/api/sessions/{sid}").json()["messages"][0]["id"]
        path = f"/api/sessions/{sid}/messages/{mine}/active"
        assert stranger.patch(path, json={}).status_code == 404
        assert browser.patch(path, json={}).status_code == 200


def test_switching_while_a_reply_is_written_is_409(slow: Slow) -> None:
    session = create_session(slow.a)
    send(session, "first")
    mid = get_session(session)["messages"][0]["id"]
    with open_stream(session, "POST", "/messages", slow.a, json={"content": "second"}) as events:
        writing = read_until(events, "delta")[1].json()["message_id"]
        refused = switch(session, mid)
        assert refused.status_code == 409
        assert writing in refused.json()["detail"] and "cancel" in refused.json()["detail"]
        cancelled = httpx.post(
            session.url(f"/messages/{writing}/cancel"), headers=session.auth, timeout=30
        )
        assert cancelled.status_code == 200
    assert len(get_session(session)["messages"]) == 4
