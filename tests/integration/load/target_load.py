"""The load suite's time-to-first-token target: the polite clients' p99 under abuse within
twice the unloaded figure of the same run. Not collected by default (the name does not
match test_*.py): on the shared 2-core machine the product misses it under the full abuse
(tests/README.md, "Load against limits", has the figures and where the time goes). Run it
by naming it: `pytest tests/integration/load/target_load.py -s`.
"""

from __future__ import annotations

from tests.integration.load.run import LoadRun

TARGET = 2.0


def test_polite_p99_time_to_first_token_under_abuse_within_twice_alone(
    load_run: LoadRun,
) -> None:
    assert load_run.ratio <= TARGET, (str(load_run.alone), str(load_run.abused))
