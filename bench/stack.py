"""The servers under test, started the way the product runs them, on free loopback ports.

Built from the test suite's helpers (tests/support): real redis-server, the fake
OpenAI-compatible model, assistant, conversation and nginx rendered from the product's
template. Differences from the test fixtures, each deliberate:
- services run with the product's command line (Procfile: `--no-server-header`, access log on)
  and conversation's production lease and heartbeat, not the tests' short ones;
- nginx's per-address rate limit is lifted, because every request of the load generator
  comes from 127.0.0.1 (the overload scenario renders the product's own limits instead);
- optionally gunicorn with N uvicorn workers instead of one uvicorn process.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tests.support.conversation import assistant_env, conversation_env
from tests.support.fake_control import FakeControl
from tests.support.nginx import make_prefix, nginx_exe, write_config
from tests.support.servers import (
    CONVERSATION_FLAGS,
    PYTHON,
    Server,
    free_port,
    http_ok,
    start,
    start_fake_upstream,
    start_redis,
    tcp_open,
    uvicorn_cmd,
)

# Reply of the fake model unless a scenario scripts another: short, no delay, so what is
# measured is our own overhead.
DEFAULT_TOKENS = 16

# Load from one address would hit the product's per-address limits at once (20 r/s, 64
# requests open at a time).
UNLIMITED = {"rate_limit": "1000000r/s", "rate_burst": "1000000", "conn_limit": "65535"}

# The product's production settings (the tests shorten both to see failures quickly), but
# for the per-client limits: every request of the load generator comes from 127.0.0.1 (up
# to 1,000 streams at once, hundreds of turns a second, each session's turns back to back on
# one WebSocket, a session of 10,000 messages), so they are off (0), as nginx's are.
PER_CLIENT_LIMITS_OFF = {
    **dict.fromkeys(
        [
            *["LIMIT_IP_GENERATIONS", "LIMIT_CLIENT_GENERATIONS", "LIMIT_IP_TURNS"],
            *["LIMIT_CLIENT_TURNS", "LIMIT_IP_TOKENS", "LIMIT_CLIENT_TOKENS"],
            *["LIMIT_IP_SESSIONS", "MAX_SESSIONS_PER_BROWSER", "MAX_MESSAGES_PER_SESSION"],
            "MAX_STORED_MESSAGES_PER_SESSION",
        ],
        "0",
    ),
    "WS_FRAME_RATE": "1000000",
    "WS_FRAME_BURST": "1000000",
}
CONVERSATION_SETTINGS = {
    "GENERATION_LEASE": "5",
    "HEARTBEAT_INTERVAL": "15",
    **PER_CLIENT_LIMITS_OFF,
}


def service_cmd(app: str, port: int, workers: int = 0) -> list[str]:
    """One uvicorn process as in the Procfile, or gunicorn with `workers` uvicorn workers."""
    if not workers:
        return [*uvicorn_cmd(app, port), "--no-server-header"]
    return [
        PYTHON,
        "-m",
        "gunicorn",
        f"{app}()",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        "uvicorn_worker.UvicornWorker",
        "--access-logfile",
        "-",
    ]


# Scenario 3 streams a 2,000-token reply: the max_tokens assistant sends upstream by default
# (OPENAI_MAX_TOKENS, 1,024) would cut it, and every route through assistant would count as
# failed. The product's own request cap (ASSISTANT_MAX_TOKENS, 4,096) is above it.
ASSISTANT_SETTINGS = {"OPENAI_MAX_TOKENS": "4096"}


def start_assistant_service(upstream: Server, workers: int = 0, **env: str) -> Server:
    port = free_port()
    cmd = service_cmd("assistant.app:create_app", port, workers)
    ready = http_ok(f"http://127.0.0.1:{port}/health/ready")
    settings = {**assistant_env(upstream), **ASSISTANT_SETTINGS, **env}
    return start("assistant", cmd, port, ready, settings, timeout=120)


def start_floor(upstream: Server) -> Server:
    """The minimal relay (bench/relay.py) in front of the fake: what any Python hop costs."""
    port = free_port()
    cmd = [*uvicorn_cmd("bench.relay:create_app", port), "--no-server-header"]
    env = {"RELAY_UPSTREAM": upstream.url}
    return start("floor", cmd, port, tcp_open(port), env)


def start_local_assistant(**env: str) -> Server:
    """Assistant with the embedded SmolLM2 model (no upstream)."""
    port = free_port()
    cmd = service_cmd("assistant.app:create_app", port)
    ready = http_ok(f"http://127.0.0.1:{port}/health/ready")
    settings = {"ASSISTANT_PROVIDER": "local", **env}
    return start("assistant-local", cmd, port, ready, settings, timeout=180)


def start_conversation_service(redis: Server, assistant_url: str, workers: int = 0) -> Server:
    port = free_port()
    cmd = service_cmd("conversation.app:create_app", port, workers)
    if not workers:
        cmd += CONVERSATION_FLAGS
    env = conversation_env(redis, assistant_url, **CONVERSATION_SETTINGS)
    return start("conversation", cmd, port, http_ok(f"http://127.0.0.1:{port}/api/health"), env)


def start_bench_nginx(
    conversation: Server, *, buffered: bool = False, limited: bool = False
) -> Server:
    """nginx from the product's template. `buffered` turns proxy buffering back on (ignoring
    the service's X-Accel-Buffering: no) and compresses event streams, as a misconfigured
    proxy would: gzip holds events back until its buffer fills. `limited` keeps the product's
    per-address rate limit."""
    port = free_port()
    prefix = make_prefix()
    options: dict[str, Any] = {} if limited else dict(UNLIMITED)
    conf = write_config(
        prefix, port, [f"127.0.0.1:{conversation.port}"], access_log=True, **options
    )
    if buffered:
        text = conf.read_text()
        broken = (
            "proxy_buffering on; proxy_ignore_headers X-Accel-Buffering; "
            "gzip_types text/event-stream;"
        )
        assert "proxy_buffering off;" in text, "the template changed: update bench/stack.py"
        conf.write_text(text.replace("proxy_buffering off;", broken))
    cmd = [nginx_exe(), "-p", str(prefix), "-c", str(conf), "-e", "stderr"]
    name = "nginx-buffered" if buffered else "nginx"
    return start(name, cmd, port, http_ok(f"http://127.0.0.1:{port}/healthz"))


@dataclass
class Stack:
    """nginx → conversation → assistant → fake model, with Redis behind conversation; and
    beside them the floor, the minimal relay every hop is measured against."""

    redis: Server
    upstream: Server
    assistant: Server
    conversation: Server
    nginx: Server
    floor: Server
    extra: list[Server] = field(default_factory=list)

    @property
    def fake(self) -> FakeControl:
        return FakeControl(self.upstream)

    def services(self) -> dict[str, Server]:
        """The stack's own processes (the fake model is the baseline, not ours)."""
        return {
            "nginx": self.nginx,
            "conversation": self.conversation,
            "assistant": self.assistant,
            "redis": self.redis,
        }


@contextlib.contextmanager
def running_stack(
    workers: int = 0, redis: Server | None = None, upstream: Server | None = None
) -> Iterator[Stack]:
    """A whole stack; `redis` and `upstream` are reused when given (and left running)."""
    owned: list[Server] = []
    try:
        if redis is None:
            redis = start_redis()
            owned.append(redis)
        if upstream is None:
            upstream = start_fake_upstream(FAKE_TOKENS=str(DEFAULT_TOKENS), FAKE_DELAY_MS="0")
            owned.append(upstream)
        assistant = start_assistant_service(upstream, workers)
        owned.append(assistant)
        conversation = start_conversation_service(redis, assistant.url, workers)
        owned.append(conversation)
        nginx = start_bench_nginx(conversation)
        owned.append(nginx)
        floor = start_floor(upstream)
        owned.append(floor)
        yield Stack(redis, upstream, assistant, conversation, nginx, floor)
    finally:
        for server in reversed(owned):
            server.stop()
