"""The suite's figures: per fault, and in total, faults injected, turns checked and
acknowledged messages lost."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Line:
    fault: str
    injected: int
    turns: int
    acknowledged: int
    lost: int
    max_loss_age: float
    resumes: int
    shown_not_stored: int
    at_risk: int  # acknowledged within the crash window before the kill
    outcomes: dict[str, int]  # how turns ended: done's status or error's code
    regenerations: int  # failed replies the clients regenerated
    note: str = ""

    def __str__(self) -> str:
        return (
            f"fault {self.fault}: injected {self.injected}, turns checked {self.turns} "
            f"({self.acknowledged} acknowledged, {self.resumes} resumes, "
            f"{self.regenerations} regenerations), "
            f"acknowledged messages lost {self.lost}"
            + (
                f" of {self.at_risk} acknowledged in the window before the crash"
                + (f" (oldest lost {self.max_loss_age:.3f} s before it)" if self.lost else "")
                if self.at_risk or self.lost
                else ""
            )
            + f", characters shown but not stored {self.shown_not_stored}, "
            f"outcomes {dict(sorted(self.outcomes.items()))}"
            + (f"; {self.note}" if self.note else "")
        )


@dataclass
class Figures:
    lines: list[Line] = field(default_factory=list)

    def add(self, line: Line) -> None:
        self.lines.append(line)
        print(line)

    def total(self) -> str:
        return (
            f"faults total: {len(self.lines)} kinds, injected "
            f"{sum(x.injected for x in self.lines)}, turns checked "
            f"{sum(x.turns for x in self.lines)}, acknowledged messages lost "
            f"{sum(x.lost for x in self.lines)}"
        )
