"""The local run (`./stack up` = scripts/up.sh under honcho) with real redis-server, assistant
(in front of a fake OpenAI-compatible model), three conversation replicas and nginx."""

from __future__ import annotations

import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.deploy.conftest import INDEX_HTML
from tests.integration.deploy.localrun import (
    LocalRun,
    listening_addresses,
    processes_of,
    start_local_run,
)
from tests.support.conversation import assistant_env as fake_assistant_env
from tests.support.servers import ROOT, Server, free_port, start_fake_upstream, wait_until
from tests.support.sse import Event, iter_events

REPLICAS = 3


def static_root() -> Path:
    """The built UI when there is one; a one-page stand-in otherwise (this test is about the
    processes, not the page)."""
    dist = ROOT / "chatui" / "dist"
    if (dist / "index.html").exists():
        return dist
    root = Path(tempfile.mkdtemp(prefix="site-"))
    root.chmod(0o755)
    (root / "index.html").write_text(INDEX_HTML)
    (root / "index.html").chmod(0o644)
    return root


@pytest.fixture(scope="module")
def upstream() -> Iterator[Server]:
    # 40 words, 40 ms apart: a reply takes long enough to be interrupted and resumed.
    server = start_fake_upstream(FAKE_TOKENS="40", FAKE_DELAY_MS="40")
    yield server
    server.stop()


def assistant_env(upstream: Server) -> dict[str, str]:
    return {**fake_assistant_env(upstream), "STATIC_ROOT": str(static_root())}


@pytest.fixture(scope="module")
def stack(upstream: Server) -> Iterator[LocalRun]:
    run = start_local_run(assistant_env(upstream), replicas=REPLICAS)
    try:
        yield run
    finally:
        try:
            run.interrupt()
        finally:
            run.kill_leftovers()


def new_session(client: httpx.Client) -> tuple[str, dict[str, str]]:
    created = client.post("/api/sessions", json={})
    assert created.status_code == 201, created.text
    body = created.json()
    return body["session_id"], {"Authorization": f"Bearer {body['token']}"}


def served_by(run: LocalRun, request_id: str) -> int:
    """The conversation replica nginx sent a request to, from nginx's access log (written
    when the response is complete, so poll for it)."""
    found: list[dict[str, Any]] = []

    def logged() -> bool:
        found[:] = [e for e in run.access_log() if e["request_id"] == request_id]
        return bool(found)

    wait_until(logged, 10, f"nginx access log line for {request_id}")
    return run.replica_of(found[0]["upstream"])


def rid() -> dict[str, str]:
    return {"X-Request-ID": uuid.uuid4().hex}


# --- a running stack --------------------------------------------------------------------


def test_every_process_is_healthy(stack: LocalRun) -> None:
    log = stack.log()
    for name in ["redis", "assistant", "nginx", *(f"conversation.{i}" for i in (1, 2, 3))]:
        assert f"{name} is healthy" in log, name
    assert f"open http://localhost:{stack.ports['HTTP_PORT']}" in log
    assert httpx.get(f"{stack.url}/api/health").json()["status"] == "success"
    for port in stack.conversation_ports():
        assert httpx.get(f"http://127.0.0.1:{port}/api/health").status_code == 200
    # Redis keeps its append-only file in the run folder.
    assert any((stack.run_dir / "redis").rglob("*.aof"))


def test_only_nginx_listens_beyond_this_machine(stack: LocalRun) -> None:
    listening = listening_addresses()
    assert listening[stack.ports["HTTP_PORT"]] & {"0.0.0.0", "::"}
    private = [stack.ports["REDIS_PORT"], stack.ports["ASSISTANT_PORT"]]
    for port in [*private, *stack.conversation_ports()]:
        assert listening.get(port) == {"127.0.0.1"}, (port, listening.get(port))


def test_the_page_is_served(stack: LocalRun) -> None:
    page = httpx.get(stack.url)
    assert page.status_code == 200 and '<div id="root">' in page.text
    assert "unsafe-inline" not in page.headers["content-security-policy"]


def test_chat_through_nginx(stack: LocalRun) -> None:
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        session, auth = new_session(client)
        url = f"/api/sessions/{session}/messages"
        with client.stream("POST", url, json={"content": "hello"}, headers=auth) as response:
            assert response.status_code == 200
            events = list(iter_events(response.iter_lines()))
        history = client.get(f"/api/sessions/{session}", headers=auth).json()
    names = [e.event for e in events]
    assert names[:2] == ["user", "start"] and names[-1] == "done", names
    text = "".join(e.json()["text"] for e in events if e.event == "delta")
    assert text == events[-1].json()["content"] and text.startswith("tok0 ")
    assert [(m["role"], m["content"]) for m in history["messages"]] == [
        ("user", "hello"),
        ("assistant", text),
    ]


def test_one_session_is_served_by_every_replica(stack: LocalRun) -> None:
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        session, auth = new_session(client)
        ids = [rid() for _ in range(2 * REPLICAS)]
        for headers in ids:
            response = client.get(f"/api/sessions/{session}", headers={**auth, **headers})
            assert response.status_code == 200 and response.json()["session_id"] == session
    replicas = {served_by(stack, h["X-Request-ID"]) for h in ids}
    assert replicas == set(range(1, REPLICAS + 1))


def test_reply_resumed_on_another_replica(stack: LocalRun) -> None:
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        session, auth = new_session(client)
        # Start a reply, read its first words, drop the connection.
        first = rid()
        seen: list[Event] = []
        url = f"/api/sessions/{session}/messages"
        body = {"content": "a long answer please"}
        with client.stream("POST", url, json=body, headers={**auth, **first}) as response:
            for event in iter_events(response.iter_lines()):
                seen.append(event)
                if event.event == "delta":
                    break
        writer = served_by(stack, first["X-Request-ID"])
        message_id = next(e.json()["message_id"] for e in seen if e.event == "start")
        before = "".join(e.json()["text"] for e in seen if e.event == "delta")
        last_id = seen[-1].id
        assert last_id is not None

        # Resume from the last event received until another replica serves it.
        resume = f"/api/sessions/{session}/messages/{message_id}/stream"
        for _ in range(REPLICAS):
            headers = {**auth, **rid(), "Last-Event-ID": last_id}
            with client.stream("GET", resume, headers=headers) as response:
                assert response.status_code == 200
                rest = list(iter_events(response.iter_lines()))
            if served_by(stack, headers["X-Request-ID"]) != writer:
                break
        else:
            pytest.fail(f"every resume was served by replica {writer}")

    assert rest[-1].event == "done", [e.event for e in rest]
    resumed = "".join(e.json()["text"] for e in rest if e.event == "delta")
    assert before + resumed == rest[-1].json()["content"]
    assert rest[-1].json()["content"].count("tok") == 40


@pytest.mark.parametrize(
    "method,path",
    [("GET", "/v1/models"), ("POST", "/v1/chat/completions"), ("GET", "/health/ready")],
)
def test_assistant_is_not_reachable_through_nginx(stack: LocalRun, method: str, path: str) -> None:
    direct = httpx.request(method, f"http://127.0.0.1:{stack.ports['ASSISTANT_PORT']}{path}")
    assert direct.headers["content-type"].startswith("application/json")  # it is there...
    through = httpx.request(method, f"{stack.url}{path}", json={})
    # ...but nginx answers itself: the page for GET, 405 for POST, never assistant's JSON.
    assert not through.headers.get("content-type", "").startswith("application/json")
    assert through.status_code in (200, 405)


# --- starting and stopping --------------------------------------------------------------


def test_ctrl_c_stops_everything_and_redis_keeps_the_data(upstream: Server) -> None:
    run = start_local_run(assistant_env(upstream), replicas=2)
    try:
        with httpx.Client(base_url=run.url, timeout=30) as client:
            session, auth = new_session(client)
        assert len(processes_of(run.run_dir)) >= 6  # 5 programs, nginx workers, honcho
        assert run.interrupt() in (0, 130)
        assert processes_of(run.run_dir) == []
        assert "ready.1 stopped" in run.log()

        # Same folder and ports again: the session is still there (AOF in RUN_DIR/redis).
        again = start_local_run(assistant_env(upstream), 2, run.run_dir, run.ports)
        try:
            restored = httpx.get(f"{again.url}/api/sessions/{session}", headers=auth)
            assert restored.status_code == 200, restored.text
        finally:
            again.interrupt()
            again.kill_leftovers()
        assert processes_of(run.run_dir) == []
    finally:
        run.kill_leftovers()


def test_a_taken_port_stops_the_start_with_a_clear_message(upstream: Server) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", free_port()))
        taken.listen()
        port = taken.getsockname()[1]
        run_dir = Path(tempfile.mkdtemp(prefix="localrun-"))
        with pytest.raises(RuntimeError, match=f"port {port} is not free"):
            start_local_run(
                assistant_env(upstream),
                replicas=1,
                run_dir=run_dir,
                ports={
                    "HTTP_PORT": port,
                    "REDIS_PORT": free_port(),
                    "ASSISTANT_PORT": free_port(),
                    "CONVERSATION_PORT": free_port(),
                },
            )
    assert processes_of(run_dir) == []


def test_a_service_that_cannot_start_stops_the_whole_stack(upstream: Server) -> None:
    run_dir = Path(tempfile.mkdtemp(prefix="localrun-"))
    broken = {**assistant_env(upstream), "ASSISTANT_PROVIDER": "no-such-provider"}
    with pytest.raises(RuntimeError) as failure:
        start_local_run(broken, replicas=1, run_dir=run_dir, timeout=60)
    message = str(failure.value)
    assert "before it was ready" in message  # up.sh exited by itself
    assert "assistant.1 stopped" in message and "no-such-provider" in message
    wait_until(lambda: processes_of(run_dir) == [], 30, "every process of the failed start")
