"""Drive the real local run (scripts/up.sh under honcho) on free ports, as a person would:
start it, wait for its "stack is up" line, use it, press Ctrl-C (SIGINT to its process
group, which is what a terminal sends), and look for anything left behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import tempfile
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

    def child_pids(self) -> list[int]:
        """Every process honcho started (it logs `name started (pid=N)`)."""
        return [int(pid) for pid in re.findall(r"started \(pid=(\d+)\)", self.log())]

    def access_log(self) -> list[dict[str, Any]]:
        """nginx's JSON access lines from the combined output."""
        entries = []
        for line in self.log().splitlines():
            _, sep, rest = line.partition("nginx.1 ")
            body = rest.partition("| ")[2] if sep else ""
            if body.startswith("{"):
                entries.append(orjson.loads(body))
        return entries

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
        raise RuntimeError(f"{exc}\n--- up.sh output ---\n{run.log()[-6000:]}") from exc
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
    """Every live process started for this run, children of children included (nginx workers):
    they all inherit RUN_DIR=<this run's folder> in their environment."""
    marker = f"RUN_DIR={run_dir}".encode() + b"\0"
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker not in (proc / "environ").read_bytes():
                continue
            state = (proc / "status").read_text()
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if "State:\tZ" not in state:  # a zombie has exited already
            found.append(f"{proc.name}: {cmdline}")
    return found
