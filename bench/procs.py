"""CPU time and resident memory of the servers under test, read from /proc.

Each server runs in its own process group (tests.support.servers starts them with a new
session), so a server's cost includes its workers: nginx's and gunicorn's children too.
"""

from __future__ import annotations

import os
import socket
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces; the fields after its closing parenthesis do not.
    return text[text.rindex(")") + 2 :].split()


def group_pids(pgid: int) -> list[int]:
    """Every live process whose process group is `pgid`."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None and int(fields[2]) == pgid:
                found.append(int(entry))
    return found


@dataclass(frozen=True)
class Usage:
    cpu_seconds: float
    rss_bytes: int


def usage(pgid: int) -> Usage:
    """CPU seconds used so far and resident memory now, summed over the process group."""
    cpu, rss = 0.0, 0
    for pid in group_pids(pgid):
        fields = _stat_fields(pid)
        if fields is None:
            continue
        # utime, stime are fields 14 and 15 of stat (index 11, 12 after the name); rss is 24.
        cpu += (int(fields[11]) + int(fields[12])) / TICKS
        rss += int(fields[21]) * PAGE
    return Usage(cpu, rss)


def cpu_seconds(pgids: list[int]) -> float:
    return sum(usage(p).cpu_seconds for p in pgids)


def machine() -> dict[str, object]:
    """What the figures were measured on."""
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    load = os.getloadavg()
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "kernel": os.uname().release,
        "load_average_at_start": [round(x, 2) for x in load],
    }


def speed() -> dict[str, float]:
    """How fast this machine is right now, to compare runs by: on a shared virtual machine
    the same code measured 2x slower an hour apart, and every ms figure moves with it.

    - `python_loop_ms`: a fixed pure-Python loop (best of 3): the interpreter's speed;
    - `ipc_round_trip_us`: one byte to another process and back over a socket pair (median):
      what waking another process costs, which each hop of a request pays.
    Call it with no event loop running: it forks.
    """
    loops = []
    for _ in range(3):
        began, total = time.perf_counter(), 0
        for i in range(1_000_000):
            total += i * i
        loops.append(time.perf_counter() - began)
    mine, theirs = socket.socketpair()
    rounds, times = 2000, []
    pid = os.fork()
    if pid == 0:  # the echo: nothing but the socket, then out without cleanup
        mine.close()
        for _ in range(rounds):
            theirs.sendall(theirs.recv(1))
        os._exit(0)
    theirs.close()
    for _ in range(rounds):
        began = time.perf_counter()
        mine.sendall(b"x")
        mine.recv(1)
        times.append(time.perf_counter() - began)
    os.waitpid(pid, 0)
    mine.close()
    return {
        "python_loop_ms": round(min(loops) * 1000, 1),
        "ipc_round_trip_us": round(statistics.median(times) * 1e6, 1),
    }
