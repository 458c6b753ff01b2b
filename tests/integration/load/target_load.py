"""The load suite's time-to-first-token target: the polite clients' p99 under abuse within
twice their p99 beside the control (the abuser's process busy, sending nothing) in the same
run. Met in every measured run, but not collected by default (the name does not match
test_*.py): on two shared cores one abused phase in fourteen had an outlier that would miss
it (tests/README.md, "Load against limits", has the figures). Run it by naming it:
`pytest tests/integration/load/target_load.py -s`.
"""

from __future__ import annotations

from tests.integration.load.run import LoadRun

TARGET = 2.0


def test_polite_p99_time_to_first_token_under_abuse_within_twice_beside_the_control(
    load_run: LoadRun,
) -> None:
    assert load_run.ratio <= TARGET, (str(load_run.control), str(load_run.abused))
