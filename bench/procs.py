"""CPU time and resident memory of the servers under test, read from /proc.

Each server runs in its own process group (tests.support.servers starts them with a new
session), so a server's cost includes its workers: nginx's and gunicorn's children too.
"""

from __future__ import annotations

import os
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
