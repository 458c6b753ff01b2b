"""The fault suite: concurrent chats through nginx while a nemesis strikes, then the checker.

One test per fault. Each runs the generator's clients against the real stack, injects the
fault once a reply is mid-stream (or before the clients start), heals it, reads every session
back and checks the recorded history against it (see checker.py for the rules).
"""

from __future__ import annotations

import os
from collections import Counter

import pytest

from tests.integration.faults.checker import Report, check
from tests.integration.faults.figures import Figures, Line
from tests.integration.faults.generator import Plan, start_clients
from tests.integration.faults.history import Recorder, StoredSession, Turn
from tests.integration.faults.nemeses import Nemesis, nemeses
from tests.integration.faults.stack import FaultStack, read_session
from tests.support.servers import wait_until

# Clients per fault, times FAULTS_SCALE: 4 by default (in ./stack test), 40 with
# FAULTS_SCALE=10, the full run (tests/README.md).
CLIENTS = 4
TURNS = 2
# Seconds a turn may take, retries and resumes included: generous, the machine is shared.
BOUND = 45.0


def scale() -> int:
    return max(int(os.environ.get("FAULTS_SCALE", "1")), 1)


def describe(turn: Turn) -> str:
    ends = [r.terminal.status if r.terminal else None for r in turn.replies]
    tried = "; ".join(
        f"{a.kind} {a.target} from {a.last_event_id}: {a.outcome}" for a in turn.attempts
    )
    return f"client {turn.client} turn {turn.index}: replies {ends}; {tried}"


def outcome(turn: Turn) -> str:
    if turn.terminal is not None:
        return turn.terminal.status
    return "abandoned" if turn.abandoned else "none"


def failure(report: Report, recorder: Recorder, stack: FaultStack) -> str:
    return "\n".join(
        [
            *(f"{v.rule}: {v.turn}: {v.detail}" for v in report.violations),
            *(describe(t) for t in recorder.turns),
            stack.logs(),
        ]
    )


@pytest.mark.parametrize("nemesis", nemeses(), ids=lambda n: n.name)
def test_fault(healthy: FaultStack, nemesis: Nemesis, figures: Figures) -> None:
    stack = healthy
    plan = Plan(
        clients=CLIENTS * scale(),
        turns=TURNS,
        entries=[stack.a.url, stack.b.url, stack.nginx.url]
        if nemesis.direct
        else [stack.nginx.url],
        resume_at=[stack.nginx.url, stack.a.url, stack.b.url],
        bound=BOUND,
        disconnect_after=nemesis.disconnect_after,
        abandon=nemesis.abandon,
    )
    recorder = Recorder(plan.clients)
    if nemesis.at == "before":
        nemesis.inject(stack, recorder)
    threads = start_clients(plan, recorder)
    if nemesis.at == "mid_stream":
        wait_until(lambda: nemesis.ready(stack, recorder), 60, f"the moment for {nemesis.name}")
        nemesis.inject(stack, recorder)
    if not nemesis.heal_late:
        nemesis.heal(stack, recorder)
    for thread in threads:
        thread.join(BOUND * (plan.turns + 1))
        assert not thread.is_alive(), f"{thread.name} still running"
    if nemesis.heal_late:
        nemesis.heal(stack, recorder)

    stored = {
        sid: StoredSession(sid, read_session(stack.nginx.url, sid, token)["messages"])
        for sid, token in recorder.sessions.items()
    }
    report = check(recorder.turns, stored, BOUND, nemesis.crash)
    injected = nemesis.count(stack, recorder)
    figures.add(
        Line(
            nemesis.name,
            injected,
            report.turns_checked,
            report.acknowledged,
            len(report.lost),
            report.max_loss_age,
            sum(t.resumes for t in recorder.turns),
            report.shown_not_stored,
            report.at_risk,
            dict(Counter(outcome(t) for t in recorder.turns)),
            sum(len(t.replies) - 1 for t in recorder.turns),
            nemesis.note,
        )
    )
    assert report.ok, failure(report, recorder, stack)
    assert injected >= 1, f"the fault never happened\n{failure(report, recorder, stack)}"
    assert nemesis.felt(recorder), f"no client felt the fault\n{failure(report, recorder, stack)}"
    assert report.turns_checked == plan.clients * plan.turns
    # Every turn got through in the end: each client retries what it was told to retry.
    assert report.acknowledged == report.turns_checked, failure(report, recorder, stack)
    if nemesis.recovers:
        # Healed, the system answers again: each client's last message got its reply.
        last = [t for t in recorder.turns if t.index == plan.turns - 1]
        assert all(t.terminal and t.terminal.status == "complete" for t in last), failure(
            report, recorder, stack
        )
