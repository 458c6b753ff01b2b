"""The stall rule: when a stream counts as stalled, for every scenario that counts stalls.

A stream stalls when its reader waits too long for its next token:

- **between tokens**: two consecutive tokens more than GAP_FACTOR times the pace apart (the
  fake streams every token `pace` after the previous one);
- **before the first token**: the first token later than the same streams got theirs
  straight from the fake, plus the same allowance. The baseline is the p99 time to first
  token of as many streams of the same reply opened at once directly on the fake, in the
  same run (`StallRule.against`): opening hundreds of streams at once takes the load
  generator and the fake time of their own, which is no route's fault, while a route that
  holds a stream open but sends nothing for seconds leaves its reader as stuck as a gap
  does. A rule on gaps alone let a server "hold" 1,000 streams whose first tokens came 30 s
  late, all of them at once when the fake had sent the whole reply.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bench.clients import Turn
from bench.stats import ms, percentile

# How many paces a reader may wait for its next token (or for its first, beyond direct's).
GAP_FACTOR = 2


@dataclass(frozen=True)
class StallRule:
    pace_ms: int
    first_token_limit_ms: float

    @classmethod
    def against(cls, direct: list[Turn], pace_ms: int) -> StallRule:
        """The rule for streams like `direct`'s: the same count, reply and pace, opened at
        once straight on the fake in the same run."""
        base = percentile([ms(t.ttft) for t in direct if t.ok], 99)
        if math.isnan(base) or len(direct) != sum(t.ok for t in direct):
            failed = next((t.error for t in direct if not t.ok), "no stream")
            raise RuntimeError(f"the direct baseline for the stall rule failed: {failed}")
        return cls(pace_ms, round(base + GAP_FACTOR * pace_ms, 1))

    @property
    def gap_limit_ms(self) -> int:
        return GAP_FACTOR * self.pace_ms

    def late_first_token(self, turn: Turn) -> bool:
        return ms(turn.ttft) > self.first_token_limit_ms

    def slow_gap(self, turn: Turn) -> bool:
        return ms(max(turn.gaps(), default=0)) > self.gap_limit_ms

    def count(self, turns: list[Turn]) -> dict[str, Any]:
        """Stalls among complete streams (`turns` that carried every token)."""
        late = [self.late_first_token(t) for t in turns]
        slow = [self.slow_gap(t) for t in turns]
        return {
            "stalled": sum(a or b for a, b in zip(late, slow, strict=True)),
            "late_first_token": sum(late),
            "stalled_between_tokens": sum(slow),
            "first_token_limit_ms": self.first_token_limit_ms,
            "gap_limit_ms": self.gap_limit_ms,
        }

    def describe(self) -> str:
        return (
            f"a gap over {self.gap_limit_ms:g} ms between tokens or a first token after "
            f"{self.first_token_limit_ms:g} ms (direct's p99 + {GAP_FACTOR}x the pace)"
        )
