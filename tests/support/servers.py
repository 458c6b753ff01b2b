"""Start real servers (redis-server, uvicorn apps, nginx) on free ports for tests.

Each server is a real child process; readiness is checked by polling a condition
(a TCP connect or an HTTP health URL), never by sleeping for a guessed time.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(
    check: Callable[[], bool],
    timeout: float,
    what: str,
    proc: subprocess.Popen[bytes] | None = None,
) -> None:
    """Poll `check` until it is true; fail with the process log if the process dies first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before it was ready")
        if check():
            return
        time.sleep(0.02)  # poll interval, not a guessed wait
    raise TimeoutError(f"{what} not ready after {timeout}s")


def http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    return check


def tcp_open(port: int) -> Callable[[], bool]:
    def check() -> bool:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=0.5),
        ):
            return True
        return False

    return check


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    # How it was started, so tests/support/processes.py can start it again on its port.
    cmd: list[str] = field(default_factory=list)
    ready: Callable[[], bool] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def start(
    name: str,
    cmd: list[str],
    port: int,
    ready: Callable[[], bool],
    env: dict[str, str] | None = None,
    timeout: float = 30,
) -> Server:
    log_dir = Path(tempfile.mkdtemp(prefix=f"{name}-"))
    log_path = log_dir / "server.log"
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(name, port, proc, log_path, env or {}, cmd, ready)
    try:
        wait_until(ready, timeout, name, proc)
    except Exception as exc:
        server.stop()
        raise RuntimeError(f"{exc}\n--- {name} log ---\n{server.log()}") from exc
    return server


def uvicorn_cmd(app: str, port: int) -> list[str]:
    # The idle keep-alive both services' Procfile and Dockerfile lines set, so tests (and the
    # bench) run with the product's 75 s rather than uvicorn's 5 s default; no access log,
    # as there (nginx logs requests).
    return [
        *[PYTHON, "-m", "uvicorn", app, "--factory", "--host", "127.0.0.1", "--port", str(port)],
        *["--timeout-keep-alive", "75", "--no-access-log"],
    ]


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    try:
        yield server
    finally:
        server.stop()


def start_redis(port: int | None = None, aof: bool = False) -> Server:
    """`aof`: the product's persistence (append-only file, fsync every second), so a
    restart with the same command recovers the data from the file."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server is not installed (run ./stack test, which installs it)")
    port = port or free_port()
    data = tempfile.mkdtemp(prefix="redis-data-")
    cmd = [
        exe,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "yes" if aof else "no",
        "--appendfsync",
        "everysec",
        "--dir",
        data,
    ]
    return start("redis", cmd, port, tcp_open(port))


def start_fake_upstream(port: int | None = None, **options: str) -> Server:
    port = port or free_port()
    cmd = [PYTHON, "-m", "tests.fakes.openai_upstream", "--port", str(port)]
    return start(
        "fake-upstream", cmd, port, http_ok(f"http://127.0.0.1:{port}/health"), env=options
    )


def start_assistant(env: dict[str, str], port: int | None = None, timeout: float = 60) -> Server:
    port = port or free_port()
    ready = http_ok(f"http://127.0.0.1:{port}/health/ready")
    return start(
        "assistant", uvicorn_cmd("assistant.app:create_app", port), port, ready, env, timeout
    )


# conversation's own flags in the Procfile and its Dockerfile: no permessage-deflate, and its
# lighter WebSocket protocol (conversation/ws_server.py), so tests run the product's server.
CONVERSATION_FLAGS = [
    *["--ws-per-message-deflate", "false"],
    *["--ws", "conversation.ws_server:WebSocketProtocol"],
]


def start_conversation(env: dict[str, str], port: int | None = None) -> Server:
    port = port or free_port()
    ready = http_ok(f"http://127.0.0.1:{port}/api/health")
    cmd = [*uvicorn_cmd("conversation.app:create_app", port), *CONVERSATION_FLAGS]
    return start("conversation", cmd, port, ready, env)
