"""Drive the real local run (scripts/up.sh, its processes under scripts/supervise.py) on free
ports, as a person would: start it, wait for its "stack is up" line, use it, kill its
processes, press Ctrl-C (SIGINT to its process group, which is what a terminal sends), and
look for anything left behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from tests.support.servers import ROOT, free_port, wait_until

READY_LINE = "The stack is up: open "


@dataclass
class LocalRun:
    proc: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str]
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['HTTP_PORT']}"

    @property
    def run_dir(self) -> Path:
        return Path(self.env["RUN_DIR"])

    def conversation_ports(self) -> list[int]:
        first = self.ports["CONVERSATION_PORT"]
        return [first + i for i in range(int(self.env["CONVERSATION_REPLICAS"]))]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def lines_of(self, name: str) -> list[str]:
        """What one process (or `up`, the supervisor) printed: `HH:MM:SS name | text`."""
        found = []
        for line in self.log().splitlines():
            head, sep, body = line.partition(" | ")
            if sep and head.split()[-1:] == [name]:
                found.append(body)
        return found

    def pid_of(self, name: str) -> int:
        """The pid of `name`'s latest start."""
        starts = [line for line in self.lines_of("up") if line.startswith(f"{name} started ")]
        assert starts, f"{name} was never started"
        return int(starts[-1].rsplit("pid=", 1)[1].rstrip(")"))

    def healthy_count(self, name: str) -> int:
        return sum(line.startswith(f"{name} is healthy") for line in self.lines_of("up"))

    def access_log(self) -> list[dict[str, Any]]:
        """nginx's JSON access lines from the combined output."""
        return [orjson.loads(body) for body in self.lines_of("nginx") if body.startswith("{")]

    def replica_of(self, upstream: str) -> int:
        return self.conversation_ports().index(int(upstream.rsplit(":", 1)[1])) + 1

    def interrupt(self, timeout: float = 30) -> int:
        """Ctrl-C: SIGINT to the whole foreground process group, then wait for the exit."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise

    def kill_leftovers(self) -> None:
        """Cleanup after a failed test only: nothing should be left when the test passes.
        Only processes that carry this run's RUN_DIR are touched, never a recycled pid."""
        for entry in processes_of(self.run_dir):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.split(":", 1)[0]), signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@contextlib.contextmanager
def local_run(extra_env: dict[str, str], replicas: int) -> Iterator[LocalRun]:
    """A started run, stopped with Ctrl-C at the end, and cleaned up if that fails."""
    run = start_local_run(extra_env, replicas)
    try:
        yield run
    finally:
        try:
            run.interrupt()
        finally:
            run.kill_leftovers()


class LocalRunFailed(RuntimeError):
    """The run never printed its "stack is up" line; `log` is everything it printed."""

    def __init__(self, cause: Exception, log: str) -> None:
        super().__init__(f"{cause}\n--- up.sh output ---\n{log[-6000:]}")
        self.log = log


def start_local_run(
    extra_env: dict[str, str],
    replicas: int = 3,
    run_dir: Path | None = None,
    ports: dict[str, int] | None = None,
    timeout: float = 120,
) -> LocalRun:
    ports = ports or {
        "HTTP_PORT": free_port(),
        "REDIS_PORT": free_port(),
        "ASSISTANT_PORT": free_port(),
        "CONVERSATION_PORT": free_consecutive_ports(replicas),
    }
    run_dir = run_dir or Path(tempfile.mkdtemp(prefix="localrun-"))
    env = {
        **os.environ,
        **{name: str(port) for name, port in ports.items()},
        "CONVERSATION_REPLICAS": str(replicas),
        "RUN_DIR": str(run_dir),
        "ENV_FILE": "/dev/null",  # a developer's .env must not change the test
        "SKIP_INSTALL": "1",
        "READY_TIMEOUT": str(int(timeout)),
        "NGINX_ACCESS_LOG": "on",
        **extra_env,
    }
    log_path = Path(tempfile.mkdtemp(prefix="localrun-log-")) / "up.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            ["bash", str(ROOT / "scripts" / "up.sh")],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, like a terminal's foreground job
        )
    run = LocalRun(proc, log_path, env, ports)
    try:
        wait_until(lambda: READY_LINE in run.log(), timeout, "the local run", proc)
    except Exception as exc:
        run.kill_leftovers()
        raise LocalRunFailed(exc, run.log()) from exc
    return run


def free_consecutive_ports(count: int) -> int:
    """A first port such that it and the next count-1 ports are free right now."""
    for _ in range(50):
        first = free_port()
        if first + count > 65535:
            continue
        if all(port_is_free(first + i) for i in range(1, count)):
            return first
    raise RuntimeError(f"no {count} consecutive free ports found")


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def listening_addresses() -> dict[int, set[str]]:
    """Port -> local addresses with a listening TCP socket, from /proc/net/tcp{,6}."""
    found: dict[int, set[str]] = {}
    for name in ("tcp", "tcp6"):
        path = Path("/proc/net") / name
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            parts = line.split()
            if parts[3] != "0A":  # LISTEN
                continue
            address, port = parts[1].split(":")
            found.setdefault(int(port, 16), set()).add(decode_address(address))
    return found


def decode_address(hex_address: str) -> str:
    if len(hex_address) == 8:  # IPv4, little-endian
        return ".".join(str(int(hex_address[i : i + 2], 16)) for i in (6, 4, 2, 0))
    return "::" if set(hex_address) == {"0"} else hex_address


def processes_of(run_dir: Path) -> list[str]:
    """Every live process started for this run, children of children included. A process
    carries RUN_DIR=<this run's folder> in its environment, or, where it wrote its title over
    its environment (redis, nginx), names the folder on its command line or works in it;
    nginx's workers share their master's session (the supervisor starts each in its own)."""
    marker = f"RUN_DIR={run_dir}".encode() + b"\0"
    found: dict[int, str] = {}
    sessions: dict[int, list[tuple[int, str]]] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            # After the command name in parentheses: state, ppid, pgrp, session, ...
            state, _, _, session = (proc / "stat").read_text().rpartition(")")[2].split()[:4]
            if state == "Z":  # a zombie has exited already
                continue
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            ours = (
                marker in (proc / "environ").read_bytes()
                or str(run_dir) in cmdline
                or Path(os.readlink(proc / "cwd")).is_relative_to(run_dir)
            )
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        pid = int(proc.name)
        sessions.setdefault(int(session), []).append((pid, cmdline))
        if ours:
            found[pid] = cmdline
    for leader in list(found):
        found.update(sessions.get(leader, []))
    return [f"{pid}: {cmdline}" for pid, cmdline in sorted(found.items())]
