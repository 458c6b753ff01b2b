"""Faults a test does to a server process: kill, pause, resume, restart, reload.

`restart` starts the same command on the same port (the crash-and-restart a supervisor
does), so clients and nginx find the server again where they left it.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tests.support.servers import Server, start, tcp_open, wait_until


def pause(server: Server) -> None:
    """Freeze the process (SIGSTOP): its sockets stay open and answer nothing."""
    os.killpg(server.proc.pid, signal.SIGSTOP)


def resume(server: Server) -> None:
    os.killpg(server.proc.pid, signal.SIGCONT)


def restart(server: Server, timeout: float = 60) -> Server:
    """Start the server's command again on its port; the old process must be gone."""
    assert server.proc.poll() is not None, f"{server.name} is still running"
    assert server.ready is not None and server.cmd, f"{server.name} was not started by start()"
    wait_until(lambda: not tcp_open(server.port)(), 10, f"{server.name}'s port to close")
    return start(server.name, server.cmd, server.port, server.ready, server.env, timeout)


def children(pid: int) -> set[int]:
    """The pids of a process's children (nginx's workers under its master)."""
    tasks = Path(f"/proc/{pid}/task")
    found: set[int] = set()
    for task in tasks.iterdir():
        text = (task / "children").read_text().split()
        found.update(int(p) for p in text)
    return found


def reload_nginx(server: Server, timeout: float = 30) -> None:
    """`nginx -s reload`: the master starts new workers; old ones finish their requests.
    Returns once new workers run."""
    before = children(server.proc.pid)
    os.kill(server.proc.pid, signal.SIGHUP)
    wait_until(
        lambda: bool(children(server.proc.pid) - before), timeout, "nginx's new workers", None
    )
