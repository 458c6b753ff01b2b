"""The local run (scripts/up.sh); standard library only.

  localrun.py ports   fail early, with a readable message, when a port is taken or not allowed
  localrun.py run     run every Procfile entry under scripts/supervise.py: logs together, the
                      URL printed once every process is healthy, a crashed process restarted
                      (RESTART_BACKOFF, RESTART_LIMIT), Ctrl-C stopping all of them

If the stack is not healthy within READY_TIMEOUT, or a process is given up on before it is,
everything is stopped: a half-started stack that never prints its URL helps nobody, and the
message names the process. Once the stack is up, a process given up on is left stopped and
the others keep serving (the page, and a JSON error from whatever needs the missing one).

Ports and counts come from the environment that up.sh exports.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from supervise import Child, HealthCheck, Program, RestartPolicy, Supervisor

PROCFILE = Path(__file__).resolve().parent.parent / "Procfile"
POLL = 0.2  # seconds between two health checks: a poll interval, not a guessed wait
CHECK_TIMEOUT = 2.0  # seconds one health check may take


def setting(name: str) -> int:
    return int(os.environ[name])


def conversation_ports() -> list[int]:
    first = setting("CONVERSATION_PORT")
    return [first + i for i in range(setting("CONVERSATION_REPLICAS"))]


def listening_ports() -> dict[str, tuple[str, int]]:
    """Every address the stack binds, checked before anything starts."""
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


async def first_line(port: int, request: bytes) -> bytes:
    """The first line a local server answers `request` with; empty when it does not."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(request)
                return await reader.readline()
            finally:
                writer.close()
    except (OSError, TimeoutError):
        return b""


def http_ok(port: int, path: str) -> HealthCheck:
    request = f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode()

    async def check() -> bool:
        return (await first_line(port, request)).split(b" ")[1:2] == [b"200"]

    return check


def redis_pong(port: int) -> HealthCheck:
    async def check() -> bool:
        # Not +PONG while it loads its append-only file (-LOADING).
        return (await first_line(port, b"PING\r\n")).startswith(b"+PONG")

    return check


def health_check(kind: str, port: int | None) -> HealthCheck:
    """Each process's own health: nginx's says nothing about the services behind it."""
    if kind == "redis":
        return redis_pong(setting("REDIS_PORT"))
    if kind == "assistant":
        return http_ok(setting("ASSISTANT_PORT"), "/health/ready")
    if kind == "conversation" and port is not None:
        return http_ok(port, "/api/health")
    if kind == "nginx":
        return http_ok(setting("HTTP_PORT"), "/healthz")
    raise SystemExit(f"up: Procfile entry {kind!r} has no health check in scripts/localrun.py")


def programs() -> list[Program]:
    """The Procfile's entries in its order; conversation once per replica, with its PORT."""
    found = []
    for line in PROCFILE.read_text().splitlines():
        match = re.fullmatch(r"([A-Za-z][\w-]*):\s*(.+)", line)
        if not match:
            continue
        kind, command = match.groups()
        if kind != "conversation":
            found.append(Program(kind, command, health_check(kind, None)))
            continue
        for i, port in enumerate(conversation_ports()):
            check = health_check(kind, port)
            found.append(Program(f"{kind}.{i + 1}", command, check, {"PORT": str(port)}))
    return found


@dataclass
class GivenUp:
    """The processes given up on so far."""

    names: list[str] = field(default_factory=list)
    any: asyncio.Event = field(default_factory=asyncio.Event)


async def wait_ready(supervisor: Supervisor, gave_up: GivenUp) -> str | None:
    """None once every process is healthy and nginx reaches conversation; else why not."""
    timeout = float(os.environ["READY_TIMEOUT"])
    deadline = time.monotonic() + timeout
    for child in supervisor.children:
        healthy = asyncio.create_task(child.healthy.wait())
        failed = asyncio.create_task(gave_up.any.wait())
        await asyncio.wait(
            [healthy, failed],
            timeout=max(deadline - time.monotonic(), 0),
            return_when=asyncio.FIRST_COMPLETED,
        )
        healthy.cancel()
        failed.cancel()
        if gave_up.names:
            names = ", ".join(gave_up.names)
            return f"{names} given up on before the stack was up; stopping everything"
        if not child.healthy.is_set():
            return f"{child.name} is not healthy after {timeout:.0f}s (READY_TIMEOUT); stopping"
    # Through nginx: proves the public door reaches conversation.
    through_nginx = http_ok(setting("HTTP_PORT"), "/api/health")
    while not await through_nginx():
        if time.monotonic() > deadline:
            return f"nginx does not reach conversation after {timeout:.0f}s; stopping"
        await asyncio.sleep(POLL)
    return None


async def run() -> int:
    policy = RestartPolicy(float(os.environ["RESTART_BACKOFF"]), setting("RESTART_LIMIT"))
    gave_up = GivenUp()
    up = False

    def on_give_up(child: Child) -> None:
        gave_up.names.append(child.name)
        gave_up.any.set()
        if up:
            supervisor.output.say(
                f"{child.name} stays stopped; the other processes keep serving. Fix the cause"
                " shown above, then Ctrl-C and ./stack up again."
            )

    supervisor = Supervisor(programs(), policy, on_give_up)
    stop, force = asyncio.Event(), asyncio.Event()

    def on_signal() -> None:
        if stop.is_set():
            supervisor.output.say("stopping at once (second signal)")
            force.set()
        else:
            supervisor.output.say("stopping every process (Ctrl-C again: at once)")
            stop.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, on_signal)

    supervisor.start()
    ready = asyncio.create_task(wait_ready(supervisor, gave_up))
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait([ready, stopped], return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if ready.done() and not stop.is_set():
        problem = ready.result()
        if problem is None:
            up = True
            url = f"http://localhost:{setting('HTTP_PORT')}"
            line = "=" * 60
            banner = [line, f"  The stack is up: open {url}", "  Ctrl-C stops every process.", line]
            for text in banner:
                supervisor.output.say(text)
            await stopped
        else:
            supervisor.output.say(problem)
            code = 1
    ready.cancel()
    stopped.cancel()
    await supervisor.stop(force)
    return code


def main() -> int:
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "ports":
        return check_ports()
    if command == "run":
        return asyncio.run(run())
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
