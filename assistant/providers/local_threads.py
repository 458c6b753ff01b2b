"""How many CPU threads each batched decode step runs on, chosen by measuring.

A step's threads meet at a barrier after every operation of the model's graph (about a
thousand per step for SmolLM2). On cores nobody else wants, more threads are faster: two
threads instead of one took one token from 13.4 to 8.6 ms and four chats' step from 40 to
22 ms (2 cores, threads spinning briefly at the barriers). On cores other processes keep
busy, every barrier waits for a thread the system has put aside: with three busy loops beside
it, one chat alone wrote 65 tokens/s on one thread and 10 on two (bench/README.md, scenario
13). Which is faster depends on the load, which changes while the service runs; so the
scheduler times each kind of step with each choice, takes the faster one, and tries the
other again every `probe_every` steps of that kind.
"""

from __future__ import annotations

from collections.abc import Sequence

# Kinds of step whose cost per token differs: one chat's next token, a few chats' next tokens
# together, a prompt being read (many tokens, the work split well between threads).
FEW_TOKENS = 8
# The first steps of a kind on a thread count are not timed: the first of all (the model's
# warm-up) read its prompt at 6-7 ms a token on two threads against 3.3 ms afterwards
# (allocations, the threads' start), and kept prompts on one thread for 50 prompts.
WARM_UP_STEPS = 1


def kind(tokens: int) -> int:
    if tokens <= 1:
        return 0
    return 1 if tokens <= FEW_TOKENS else 2


class ThreadChooser:
    def __init__(self, choices: Sequence[int], *, probe_every: int = 50, weight: float = 0.3):
        if not choices:
            raise ValueError("no thread counts to choose from")
        self.choices = tuple(sorted(set(choices)))
        self.probe_every = probe_every
        self.weight = weight
        # Seconds per token, a moving average per (kind of step, threads).
        self._cost: dict[tuple[int, int], float] = {}
        self._seen: dict[tuple[int, int], int] = {}  # steps timed, warm-up ones included
        self._steps = [0, 0, 0]

    def pick(self, tokens: int) -> int:
        """Threads for a step of `tokens` tokens."""
        k = kind(tokens)
        untried = [n for n in self.choices if self._seen.get((k, n), 0) <= WARM_UP_STEPS]
        if untried:
            return untried[-1]
        best = self.best(k)
        self._steps[k] += 1
        if len(self.choices) > 1 and self._steps[k] % self.probe_every == 0:
            # Now and then another choice, so a change in the load is noticed.
            others = [n for n in self.choices if n != best]
            return others[(self._steps[k] // self.probe_every - 1) % len(others)]
        return best

    def best(self, k: int) -> int:
        """The fastest choice measured for steps of kind `k` (the most threads if none is)."""
        measured = [n for n in self.choices if (k, n) in self._cost]
        if not measured:
            return self.choices[-1]
        return min(measured, key=lambda n: self._cost[(k, n)])

    def record(self, tokens: int, threads: int, seconds: float) -> None:
        k = kind(tokens)
        key = (k, threads)
        self._seen[key] = self._seen.get(key, 0) + 1
        if self._seen[key] <= WARM_UP_STEPS:
            return
        cost = seconds / max(tokens, 1)
        before = self._cost.get(key)
        if before is None or threads != self.best(k):
            # A probe: what it replaces was measured under a load long gone. Should it be a
            # fluke, the steps that follow on it average it out at once.
            self._cost[key] = cost
        else:
            self._cost[key] = before + self.weight * (cost - before)
