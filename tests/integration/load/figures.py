"""The suite's figures: the polite clients' time to first token, and what the abuser was
refused, printed (run with -s to see them)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from tests.integration.load.polite import Record


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest rank: the smallest value with at least p% of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


@dataclass(frozen=True)
class Phase:
    name: str
    ttft: list[float]
    problems: list[str]

    @classmethod
    def of(cls, name: str, records: list[Record]) -> Phase:
        return cls(
            name,
            [t for r in records for t in r.ttft],
            [p for r in records for p in r.problems],
        )

    @property
    def p99(self) -> float:
        return percentile(self.ttft, 99)

    def __str__(self) -> str:
        ms = {p: percentile(self.ttft, p) * 1000 for p in (50, 90, 99)}
        return (
            f"{self.name}: {len(self.ttft)} turns, time to first token p50 {ms[50]:.1f} ms, "
            f"p90 {ms[90]:.1f} ms, p99 {ms[99]:.1f} ms, max {max(self.ttft) * 1000:.1f} ms, "
            f"problems {len(self.problems)}"
        )


def refusals(counts: dict[str, int]) -> str:
    """What the abuser did and was told, one line per kind, most frequent first."""
    return "\n".join(f"  {n:>8}  {what}" for what, n in sorted(counts.items(), key=lambda x: -x[1]))
