"""The fault suite's product: redis-server with its AOF, the fake model, assistant, two
conversation replicas and nginx, as real processes on free ports. Nemeses kill, pause and
restart them; `restore` brings every one back (same port) for the next fault."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from tests.support.conversation import assistant_env, kill, start_replica
from tests.support.fake_control import FakeControl
from tests.support.nginx import start_nginx
from tests.support.processes import restart, resume
from tests.support.servers import (
    Server,
    http_ok,
    start_assistant,
    start_fake_upstream,
    start_redis,
    wait_until,
)

# The fake model's pace: a reply of ~35 words takes about a second, long enough to be hit.
FAKE_DELAY_MS = "30"

# Upstream failures are detected and retried fast, so a failing turn ends in seconds.
ASSISTANT_TIMEOUTS = {
    "UPSTREAM_IDLE_TIMEOUT": "2",
    "UPSTREAM_FIRST_TOKEN_TIMEOUT": "5",
    "UPSTREAM_RETRY_BACKOFF": "0.05",
}


@dataclass
class FaultStack:
    redis: Server
    upstream: Server
    assistant: Server
    a: Server
    b: Server
    nginx: Server

    @property
    def fake(self) -> FakeControl:
        return FakeControl(self.upstream)

    def servers(self) -> list[Server]:
        return [self.nginx, self.a, self.b, self.assistant, self.upstream, self.redis]

    def logs(self) -> str:
        return "\n".join(f"--- {s.name} ---\n{s.log()[-3000:]}" for s in self.servers())

    def restore(self) -> None:
        """Every process running and answering again, the fake model's script empty."""
        with contextlib.suppress(ProcessLookupError):
            resume(self.redis)
        for attr in ("redis", "upstream", "assistant", "a", "b", "nginx"):
            server: Server = getattr(self, attr)
            if server.proc.poll() is not None:
                setattr(self, attr, restart(server))
        self.fake.reset()
        for replica in (self.a, self.b):
            wait_until(http_ok(f"{replica.url}/api/health/ready"), 60, f"{replica.name} ready")

    def stop(self) -> None:
        for server in self.servers():
            server.stop()


@contextlib.contextmanager
def fault_stack() -> Iterator[FaultStack]:
    started: list[Server] = []
    try:
        redis = start_redis(aof=True)
        started.append(redis)
        upstream = start_fake_upstream(FAKE_DELAY_MS=FAKE_DELAY_MS)
        started.append(upstream)
        assistant = start_assistant({**assistant_env(upstream), **ASSISTANT_TIMEOUTS})
        started.append(assistant)
        a = start_replica(redis, assistant.url)
        started.append(a)
        b = start_replica(redis, assistant.url)
        started.append(b)
        # The product's nginx, rate limit aside: every client here shares one address.
        nginx = start_nginx(
            [f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"], rate_limit="1000r/s", rate_burst=1000
        )
        started.append(nginx)
        stack = FaultStack(redis, upstream, assistant, a, b, nginx)
        yield stack
        started = stack.servers()
    finally:
        for server in reversed(started):
            server.stop()


def kill_and_restart(server: Server) -> Server:
    kill(server)
    return restart(server)


def read_session(base: str, session_id: str, token: str, timeout: float = 30) -> dict[str, Any]:
    """The session's stored history, asked again while the stack still recovers (503)."""
    found: dict[str, Any] = {}

    def fetch() -> bool:
        try:
            r = httpx.get(
                f"{base}/api/sessions/{session_id}",
                headers={"Authorization": f"Bearer {token}"},
                timeout=5,
            )
        except httpx.HTTPError:
            return False
        if r.status_code == 200:
            found.update(r.json())
            return True
        assert r.status_code in (502, 503, 504), r.text
        return False

    wait_until(fetch, timeout, f"session {session_id}'s history")
    return found
