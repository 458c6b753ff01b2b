"""CPU seconds each server spent over a phase, from /proc: where a slower first token's
time went (each server runs in a process group of its own, nginx's workers included)."""

from __future__ import annotations

import os
from collections.abc import Mapping
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
    """CPU seconds per named process group between `start` and `stop`."""

    def __init__(self, groups: Mapping[str, int]) -> None:
        self.groups = dict(groups)
        self.before: dict[str, float] = {}
        self.spent: dict[str, float] = {}

    def start(self) -> None:
        self.before = {name: group_seconds(pgid) for name, pgid in self.groups.items()}

    def stop(self) -> None:
        self.spent = {
            name: group_seconds(pgid) - self.before[name] for name, pgid in self.groups.items()
        }

    def __str__(self) -> str:
        return ", ".join(f"{name} {s:.1f} s" for name, s in self.spent.items())
