"""Helpers for the local run (scripts/up.sh); standard library only.

  localrun.py ports   fail early, with a readable message, when a port is taken or not allowed
  localrun.py ready   (a Procfile entry) wait until every process is healthy, print the URL,
                      then stay until honcho stops the stack; give up after READY_TIMEOUT,
                      which makes honcho stop everything instead of running half a stack

Ports and counts come from the environment that up.sh exports.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable

POLL = 0.2  # seconds between two health checks: a poll interval, not a guessed wait


def setting(name: str) -> int:
    return int(os.environ[name])


def conversation_ports() -> list[int]:
    first = setting("CONVERSATION_PORT")
    return [first + i for i in range(setting("CONVERSATION_REPLICAS"))]


def listening_ports() -> dict[str, tuple[str, int]]:
    """Every address the stack binds: the check before start, the same as the Procfile."""
    ports = {
        "site (HTTP_PORT)": ("0.0.0.0", setting("HTTP_PORT")),
        "redis (REDIS_PORT)": ("127.0.0.1", setting("REDIS_PORT")),
        "assistant (ASSISTANT_PORT)": ("127.0.0.1", setting("ASSISTANT_PORT")),
    }
    for i, port in enumerate(conversation_ports()):
        ports[f"conversation replica {i + 1} (CONVERSATION_PORT+{i})"] = ("127.0.0.1", port)
    return ports


def check_ports() -> int:
    ports = listening_ports()
    numbers = [port for _, port in ports.values()]
    if len(set(numbers)) != len(numbers):
        print(f"up: two processes would share a port: {ports}", file=sys.stderr)
        return 1
    for name, (host, port) in ports.items():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except PermissionError:
                print(
                    f"up: {name}: port {port} needs root; run as root or set HTTP_PORT=8080",
                    file=sys.stderr,
                )
                return 1
            except OSError as exc:
                print(
                    f"up: {name}: port {port} is not free ({exc.strerror}); is the stack already"
                    " running? Otherwise choose another port in .env",
                    file=sys.stderr,
                )
                return 1
    return 0


def http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    return check


def redis_pong(port: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    return check


def wait_ready() -> int:
    timeout = float(os.environ.get("READY_TIMEOUT", "300"))
    http_port = setting("HTTP_PORT")
    checks: list[tuple[str, Callable[[], bool]]] = [
        ("redis", redis_pong(setting("REDIS_PORT"))),
        ("assistant", http_ok(f"http://127.0.0.1:{setting('ASSISTANT_PORT')}/health/ready")),
    ]
    for i, port in enumerate(conversation_ports()):
        checks.append((f"conversation.{i + 1}", http_ok(f"http://127.0.0.1:{port}/api/health")))
    # Through nginx: proves the public door reaches conversation.
    checks.append(("nginx", http_ok(f"http://127.0.0.1:{http_port}/api/health")))

    started = time.monotonic()
    deadline = started + timeout
    for name, check in checks:
        while not check():
            if time.monotonic() > deadline:
                print(f"{name} is not healthy after {timeout:.0f}s (READY_TIMEOUT); stopping")
                return 1
            time.sleep(POLL)
        print(f"{name} is healthy ({time.monotonic() - started:.1f}s)", flush=True)

    url = f"http://localhost:{http_port}"
    line = "=" * 60
    print(
        f"{line}\n  The stack is up: open {url}\n  Ctrl-C stops every process.\n{line}", flush=True
    )
    # Stay: honcho stops every process when one exits. SIGTERM (honcho's stop) ends this.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        signal.pause()


def main() -> int:
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "ports":
        return check_ports()
    if command == "ready":
        return wait_ready()
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
