"""Helpers for talking to conversation the way its clients do: JSON, SSE and WebSocket."""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from conversation.store import Keys
from tests.support.servers import Server, start_assistant, start_conversation
from tests.support.sse import Event, iter_events

# Conversation's key names with the default KEY_PREFIX, for tests that look into Redis.
KEYS = Keys("chat")


def assistant_env(upstream: Server) -> dict[str, str]:
    return {
        "ASSISTANT_PROVIDER": "openai",
        "OPENAI_BASE_URL": f"{upstream.url}/v1",
        "OPENAI_API_KEY": "test-key",
        "OPENAI_MODEL": "fake-model",
    }


def start_assistant_for(upstream: Server, port: int | None = None) -> Server:
    return start_assistant(assistant_env(upstream), port=port)


def conversation_env(redis: Server, assistant_url: str, **extra: str) -> dict[str, str]:
    return {
        "REDIS_URL": f"redis://127.0.0.1:{redis.port}/0",
        "ASSISTANT_URL": assistant_url,
        # Short lease and heartbeat so a dead replica and idle streams show up quickly.
        "GENERATION_LEASE": "1",
        "HEARTBEAT_INTERVAL": "0.5",
        # Teardown stops replicas with SIGTERM, which waits for their replies: not for long.
        "SHUTDOWN_GRACE_PERIOD": "2",
        # Tests script a fake model's answers in order, and a chat's title request would
        # take one: titles are tested where they are turned on (test_models.py).
        "TITLES": "false",
        **extra,
    }


def start_replica(redis: Server, assistant_url: str, **extra: str) -> Server:
    return start_conversation(conversation_env(redis, assistant_url, **extra))


def kill(server: Server) -> None:
    """Kill a server the hard way (no shutdown code runs), as a crash would."""
    os.killpg(server.proc.pid, signal.SIGKILL)
    server.proc.wait()


@dataclass
class Session:
    server: str
    session_id: str
    token: str
    data: dict[str, Any]

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def url(self, path: str = "", server: Server | str | None = None) -> str:
        base = server.url if isinstance(server, Server) else (server or self.server)
        return f"{base}/api/sessions/{self.session_id}{path}"


def create_session(server: Server, **body: Any) -> Session:
    response = httpx.post(f"{server.url}/api/sessions", json=body, timeout=10)
    assert response.status_code == 201, response.text
    data = response.json()
    return Session(server.url, data["session_id"], data["token"], data)


def get_session(session: Session, server: Server | None = None) -> dict[str, Any]:
    response = httpx.get(session.url(server=server), headers=session.auth, timeout=10)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def send(session: Session, content: str, server: Server | None = None, **extra: Any) -> list[Event]:
    """Post a message and read its whole SSE answer."""
    body = {"content": content, **extra}
    with httpx.stream(
        "POST", session.url("/messages", server), json=body, headers=session.auth, timeout=60
    ) as response:
        assert response.status_code == 200, response.read()
        return list(iter_events(response.iter_lines()))


@contextlib.contextmanager
def open_stream(
    session: Session,
    method: str,
    path: str,
    server: Server | None = None,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> Iterator[Iterator[Event]]:
    """An SSE request left open: the caller reads events one by one and may drop it."""
    with (
        httpx.Client(timeout=60) as client,
        client.stream(
            method,
            session.url(path, server),
            headers={**session.auth, **(headers or {})},
            **kwargs,
        ) as response,
    ):
        assert response.status_code == 200, response.read()
        yield iter_events(response.iter_lines())


def read_until(events: Iterator[Event], name: str) -> list[Event]:
    """Events up to and including the first one called `name`."""
    seen: list[Event] = []
    for event in events:
        seen.append(event)
        if event.event == name:
            return seen
    raise AssertionError(f"stream ended without a {name!r} event: {[e.event for e in seen]}")


def text_of(events: list[Event]) -> str:
    return "".join(e.json()["text"] for e in events if e.event == "delta")


def slow_reply(tokens: int) -> str:
    """What the fake upstream says when FAKE_TOKENS is set."""
    return "".join(f"tok{i} " for i in range(tokens))


def models_file(upstreams: dict[str, Server], default: str) -> Path:
    """A MODELS_FILE serving each model id from its own fake upstream (one provider each,
    key from FAKE_KEY in assistant's environment)."""
    lines = [f"default = {default!r}"]
    for model, upstream in upstreams.items():
        lines += [
            "[[providers]]",
            f"name = 'p-{model}'",
            "kind = 'openai'",
            f"base_url = '{upstream.url}/v1'",
            "api_key_env = 'FAKE_KEY'",
            "[[models]]",
            f"id = {model!r}",
            f"provider = 'p-{model}'",
            f"display_name = 'Model {model}'",
            "context_length = 4096",
        ]
    path = Path(tempfile.mkdtemp(prefix="models-")) / "models.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def start_catalogue_assistant(upstreams: dict[str, Server], default: str) -> Server:
    """Assistant serving one model per fake upstream, `default` its default."""
    env = {"MODELS_FILE": str(models_file(upstreams, default)), "FAKE_KEY": "test-key"}
    return start_assistant(env)
