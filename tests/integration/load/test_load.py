"""Load against limits: one abusive client (many sockets, fast frames, endless generation,
new sessions in a loop, a burst of requests) while ten polite clients chat. The polite ones
must see no error, and the abuser must have been refused at every limit it ran into.

The time-to-first-token target (p99 under abuse within twice the unloaded one) is
`target_load.py`, run by naming it: see tests/README.md, "Load against limits".
"""

from __future__ import annotations

import pytest

from tests.integration.load.run import POLITE, TURNS, LoadRun

# Each limit the abuser must have run into: the test fails if the abuse did not happen.
REFUSALS = [
    "ws upgrade 429",  # nginx: requests per second, connections of the address
    "POST messages 429 (nginx)",
    "POST messages 429 (conversation)",  # the address's replies at once, turns per window
    "ws error frame rate_limited",  # the same, or a socket's frame rate
    "ws closed 1008",  # frames kept coming past the frame rate
    "ws closed 1009",  # a frame past the size cap
    "ws error frame invalid",  # binary frames
]


def test_polite_clients_see_no_error_under_abuse(load_run: LoadRun) -> None:
    for phase in load_run.phases:
        assert not phase.problems, (phase.name, phase.problems)
        assert len(phase.ttft) == TURNS * len(POLITE), phase.name


@pytest.mark.parametrize("refusal", REFUSALS)
def test_the_abuser_was_refused(load_run: LoadRun, refusal: str) -> None:
    assert load_run.abuser.counts.get(refusal), load_run.abuser.counts


def test_the_abusers_replies_were_written(load_run: LoadRun) -> None:
    """Within its limits the abuser is served like anyone: its endless replies started."""
    counts = load_run.abuser.counts
    assert counts.get("ws start frame", 0) + counts.get("SSE start event", 0) > 0, counts
