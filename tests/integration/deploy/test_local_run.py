"""The local run (`./stack up` = scripts/up.sh, its processes under scripts/supervise.py) with
real redis-server, assistant (in front of a fake OpenAI-compatible model), conversation
replicas and nginx: serving, surviving a killed process, giving up on one that cannot start,
stopping."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.integration.deploy.conftest import INDEX_HTML
from tests.integration.deploy.local_stack import (
    LocalRun,
    LocalRunFailed,
    listening_addresses,
    local_run,
    processes_of,
    start_local_run,
)
from tests.support.conversation import assistant_env as fake_assistant_env
from tests.support.servers import (
    ROOT,
    Server,
    free_port,
    http_ok,
    start_fake_upstream,
    wait_until,
)
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
    with local_run(assistant_env(upstream), REPLICAS) as run:
        yield run


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


def test_redis_refuses_writes_past_its_memory_cap_instead_of_evicting(stack: LocalRun) -> None:
    with redis.Redis(port=stack.ports["REDIS_PORT"], decode_responses=True) as client:
        assert client.config_get("maxmemory") == {"maxmemory": str(256 * 1024 * 1024)}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}


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


def send(client: httpx.Client, session: str, auth: dict[str, str]) -> list[Event]:
    """One turn ("hello"), its events to the end."""
    url = f"/api/sessions/{session}/messages"
    with client.stream("POST", url, json={"content": "hello"}, headers=auth) as response:
        assert response.status_code == 200
        return list(iter_events(response.iter_lines()))


def test_chat_through_nginx(stack: LocalRun) -> None:
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        session, auth = new_session(client)
        events = send(client, session, auth)
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
        assert len(processes_of(run.run_dir)) >= 7  # 5 programs, nginx workers, supervisor
        assert run.interrupt() in (0, 130)
        assert processes_of(run.run_dir) == []
        stopped = [line for line in run.lines_of("up") if line.endswith(" stopped")]
        # In reverse start order: nginx stops taking requests first, Redis goes last.
        assert stopped == [
            "nginx stopped",
            "conversation.1 stopped",
            "conversation.2 stopped",
            "assistant stopped",
            "redis stopped",
        ]

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
    """Before the stack is up, a process that dies at every start is retried with backoff,
    then the whole run stops naming it: its URL would never come."""
    run_dir = Path(tempfile.mkdtemp(prefix="localrun-"))
    broken = {**assistant_env(upstream), "ASSISTANT_PROVIDER": "no-such-provider"}
    with pytest.raises(LocalRunFailed) as failure:
        start_local_run(broken, replicas=1, run_dir=run_dir, timeout=90)
    message = failure.value.log
    assert "before it was ready" in str(failure.value)  # up.sh exited by itself
    assert restart_delays(message, "assistant") == ["0.5", "1", "2", "4"]
    assert "assistant exited with code" in message and "giving up on it" in message
    assert "no-such-provider" in message  # its own last lines name the cause
    assert "given up on before the stack was up" in message
    wait_until(lambda: processes_of(run_dir) == [], 30, "every process of the failed start")


def restart_delays(log: str, name: str) -> list[str]:
    return re.findall(rf"\| {re.escape(name)} [^\n]*; restarting it in ([\d.]+)s", log)


# --- a process dies ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def fresh_stack(upstream: Server) -> Iterator[LocalRun]:
    """Two replicas that have not served a turn yet: the one that holds a connection to
    assistant is the one writing the first reply."""
    with local_run(assistant_env(upstream), 2) as run:
        yield run


def stored_reply(client: httpx.Client, session: str, auth: dict[str, str]) -> dict[str, Any]:
    """The session's last message as its history shows it (mid-reply: the text in Redis)."""
    messages = client.get(f"/api/sessions/{session}", headers=auth).json()["messages"]
    return dict(messages[-1])


def deltas(events: list[Event]) -> str:
    return "".join(e.json()["text"] for e in events if e.event == "delta")


class Probe:
    """Asks the given URLs for 200, again and again, in a thread, until stopped."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.answers: list[tuple[str, int | str]] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self.stopped.is_set():
                for url in self.urls:
                    try:
                        self.answers.append((url, client.get(url).status_code))
                    except httpx.HTTPError as exc:
                        self.answers.append((url, repr(exc)))
                self.stopped.wait(0.05)  # probe interval

    def stop(self) -> list[tuple[str, int | str]]:
        self.stopped.set()
        self.thread.join()
        return self.answers


def test_a_replica_killed_mid_reply_comes_back_and_the_reply_resumes_elsewhere(
    fresh_stack: LocalRun, upstream: Server
) -> None:
    run = fresh_stack
    # Eight words, then the model stalls: the reply stays mid-stream until its writer dies.
    httpx.post(f"{upstream.url}/_fake/script", json={"stall_after": 8}).raise_for_status()
    written = "".join(f"tok{i} " for i in range(8))
    with httpx.Client(base_url=run.url, timeout=30) as client:
        session, auth = new_session(client)
        received: list[Event] = []
        # Straight to replica 1, so the writer is known: which replica holds a connection to
        # assistant says nothing (both may have pooled one at start, for the model list).
        writer, other = 1, 2
        writer_port = run.conversation_ports()[writer - 1]
        url = f"http://127.0.0.1:{writer_port}/api/sessions/{session}/messages"
        with client.stream("POST", url, json={"content": "hello"}, headers=auth) as response:
            assert response.status_code == 200
            events = iter_events(response.iter_lines())
            for event in events:
                received.append(event)
                if event.event == "delta":
                    break
            first = received[-1]
            message_id = next(e.json()["message_id"] for e in received if e.event == "start")
            # The writer stores the rest within STREAM_UNWATCHED_FLUSH_MS.
            wait_until(
                lambda: stored_reply(client, session, auth)["content"] == written,
                10,
                "every word of the reply in Redis",
            )
            writer_pid = run.pid_of(f"conversation.{writer}")
            healthy_before = run.healthy_count(f"conversation.{writer}")
            probe = Probe(
                [
                    f"http://127.0.0.1:{run.conversation_ports()[other - 1]}/api/health",
                    f"{run.url}/api/health",
                    f"{run.url}/",
                ]
            )
            os.kill(writer_pid, signal.SIGKILL)
            killed = time.monotonic()
            # The client keeps what reached it before its stream broke.
            with contextlib.suppress(httpx.TransportError):
                received.extend(events)
        assert all(e.event in ("user", "start", "delta") for e in received)

        wait_until(
            lambda: (
                run.healthy_count(f"conversation.{writer}") > healthy_before
                and http_ok(f"http://127.0.0.1:{writer_port}/api/health")()
            ),
            30,
            f"conversation.{writer} back on its port",
        )
        back_after = time.monotonic() - killed
        answers = probe.stop()
        assert run.pid_of(f"conversation.{writer}") != writer_pid
        assert answers and all(status == 200 for _, status in answers), answers
        print(f"\nconversation.{writer}: kill -9 -> answering again in {back_after:.2f}s")

        # Resume through nginx from the last event the client got, and from its first delta
        # (a client that missed the rest): each gets every stored character it lacks, then
        # `interrupted` once the dead writer's lease runs out.
        resume = f"/api/sessions/{session}/messages/{message_id}/stream"
        for last in (received[-1], first):
            assert last.id is not None
            headers = {**auth, "Last-Event-ID": last.id}
            with client.stream("GET", resume, headers=headers) as response:
                assert response.status_code == 200
                rest = list(iter_events(response.iter_lines()))
            have = deltas(received[: received.index(last) + 1])
            assert have + deltas(rest) == written
            assert rest[-1].event == "error", [e.event for e in rest]
            assert rest[-1].json()["code"] == "interrupted"
            assert rest[-1].id == str(len(written))

        reply = stored_reply(client, session, auth)
        assert (reply["status"], reply["content"]) == ("interrupted", written)

        # The user asks again: a whole new reply.
        again_url = f"/api/sessions/{session}/regenerate"
        with client.stream("POST", again_url, json={}, headers=auth) as response:
            again = list(iter_events(response.iter_lines()))
        assert again[-1].event == "done", [e.event for e in again]
        assert deltas(again).count("tok") == 40


# Redis last: conversation's pooled connections to the killed Redis each fail one request
# before they are replaced, which would trip a later test on this stack.
@pytest.mark.parametrize("name", ["nginx", "assistant", "redis"])
def test_a_killed_process_is_restarted_and_serves_again(fresh_stack: LocalRun, name: str) -> None:
    run = fresh_stack
    old = run.pid_of(name)
    healthy_before = run.healthy_count(name)
    os.kill(old, signal.SIGKILL)
    wait_until(lambda: run.healthy_count(name) > healthy_before, 60, f"{name} restarted")
    assert run.pid_of(name) != old
    # Nothing of the killed one is left (nginx's workers would keep its port).
    wait_until(lambda: group_members(old) == [], 5, f"the rest of {name}'s process group")
    served: list[list[Event]] = []
    refused = 0

    def turn_served() -> bool:
        nonlocal refused
        events = new_turn(run)
        if events is None:
            refused += 1
            return False
        served.append(events)
        return True

    if name == "redis":
        # conversation answers a request that meets one of its connections to the dead Redis
        # with a 503 saying to try again; a client that does is served.
        wait_until(turn_served, 20, "a turn after Redis came back")
        print(f"\nafter the Redis restart: {refused} request(s) answered 503, then served")
    else:
        assert turn_served()
    events = served[0]
    assert events[-1].event == "done", events[-2:]
    assert deltas(events).count("tok") == 40


def new_turn(run: LocalRun) -> list[Event] | None:
    """A new session's first turn through nginx, its events to the end; None when
    conversation answered the 503 it gives when Redis fails it (anything else fails)."""
    with httpx.Client(base_url=run.url, timeout=30) as client:
        created = client.post("/api/sessions", json={})
        if created.status_code != 201:
            assert redis_failed(created), created.text
            return None
        body = created.json()
        auth = {"Authorization": f"Bearer {body['token']}"}
        url = f"/api/sessions/{body['session_id']}/messages"
        with client.stream("POST", url, json={"content": "hello"}, headers=auth) as response:
            if response.status_code == 200:
                return list(iter_events(response.iter_lines()))
            response.read()
        assert redis_failed(response), response.text
        return None


def redis_failed(response: httpx.Response) -> bool:
    return response.status_code == 503 and "(Redis)" in response.json().get("detail", "")


def group_members(pgid: int) -> list[int]:
    """Live processes of a process group (zombies have exited already)."""
    members = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                # After the command name in parentheses: state, ppid, pgrp, ...
                state, _, group = (proc / "stat").read_text().rpartition(")")[2].split()[:3]
                if int(group) == pgid and state != "Z":
                    members.append(int(proc.name))
    return members


def test_a_process_dying_at_every_start_is_given_up_while_the_rest_serves(
    upstream: Server,
) -> None:
    """Once the stack is up, a process that cannot start again is retried with backoff, then
    left stopped with a message naming it; the others keep serving."""
    run = start_local_run(assistant_env(upstream), replicas=1)
    try:
        # Redis's data folder becomes a file: every start of redis now fails at once.
        data = run.run_dir / "redis"
        shutil.rmtree(data)
        data.write_text("not a folder\n")
        os.kill(run.pid_of("redis"), signal.SIGKILL)
        wait_until(lambda: "redis stays stopped" in run.log(), 60, "redis given up on", run.proc)
        assert restart_delays(run.log(), "redis") == ["0.5", "1", "2", "4"]
        up = run.lines_of("up")
        assert any(line.startswith("redis exited with code 1") for line in up), up
        assert any("giving up on it" in line for line in up)
        assert "Not a directory" in run.log()  # redis's own reason, quoted
        assert run.proc.poll() is None  # the run goes on
        # The page and conversation still answer; what needs Redis says so in JSON.
        assert httpx.get(run.url).status_code == 200
        assert httpx.get(f"{run.url}/api/health").status_code == 200
        refused = httpx.post(f"{run.url}/api/sessions", json={})
        assert refused.status_code >= 500, refused.text
        assert refused.headers["content-type"].startswith("application/json"), refused.text
        assert run.interrupt() in (0, 130)
        assert processes_of(run.run_dir) == []
    finally:
        run.kill_leftovers()
