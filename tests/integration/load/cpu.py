"""CPU seconds each server spent over a phase, from /proc: where a slower first token's
time went (each server runs in a process group of its own, nginx's workers included)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def group_seconds(pgid: int) -> float:
    """User and system CPU seconds of every live process in the group."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended meanwhile
            continue
        # After "pid (comm) ": state, ppid, pgrp, ..., utime and stime are the 12th and
        # 13th fields; comm may hold spaces and parentheses, so split after its last ")".
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / TICKS


class CpuMeter:
    """CPU seconds per name (the process groups of a service's replicas, summed) between
    `start` and `stop`."""

    def __init__(self, groups: Mapping[str, Sequence[int]]) -> None:
        self.groups = dict(groups)
        self.before: dict[str, float] = {}
        self.spent: dict[str, float] = {}

    def seconds(self) -> dict[str, float]:
        return {name: sum(map(group_seconds, pgids)) for name, pgids in self.groups.items()}

    def start(self) -> None:
        self.before = self.seconds()

    def stop(self) -> None:
        self.spent = {name: s - self.before[name] for name, s in self.seconds().items()}

    def __str__(self) -> str:
        return ", ".join(f"{name} {s:.1f} s" for name, s in self.spent.items())
