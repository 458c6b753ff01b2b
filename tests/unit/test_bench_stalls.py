"""The bench's stall rule (bench/stalls.py) on streams as the client records them."""

from __future__ import annotations

import pytest

from bench.clients import Turn
from bench.stalls import StallRule


def stream(first_token_ms: float, gaps_ms: list[float]) -> Turn:
    """A complete stream sent at 0: its first token after `first_token_ms`, then `gaps_ms`."""
    times = [first_token_ms / 1000]
    for gap in gaps_ms:
        times.append(times[-1] + gap / 1000)
    return Turn(start=0.0, token_times=times, end=times[-1])


def test_the_first_token_limit_is_directs_p99_plus_twice_the_pace() -> None:
    direct = [stream(float(ms), [100.0, 100.0]) for ms in range(1, 101)]
    rule = StallRule.against(direct, pace_ms=100)
    assert rule.first_token_limit_ms == pytest.approx(99.01 + 200, abs=0.1)
    assert rule.gap_limit_ms == 200


def test_a_late_first_token_stalls_a_stream_whose_gaps_keep_the_pace() -> None:
    rule = StallRule(pace_ms=100, first_token_limit_ms=300.0)
    on_time = stream(250.0, [100.0, 100.0])
    late = stream(3000.0, [100.0, 100.0])  # a server that started it seconds late
    slow = stream(50.0, [100.0, 250.0])
    both = stream(400.0, [300.0])
    found = rule.count([on_time, late, slow, both])
    assert found["stalled"] == 3
    assert found["late_first_token"] == 2
    assert found["stalled_between_tokens"] == 2
    assert (found["first_token_limit_ms"], found["gap_limit_ms"]) == (300.0, 200)
    assert rule.count([on_time])["stalled"] == 0


def test_a_failed_direct_baseline_is_an_error_not_a_lenient_rule() -> None:
    broken = Turn(start=0.0).fail("HTTP 500")
    with pytest.raises(RuntimeError, match="HTTP 500"):
        StallRule.against([stream(1.0, [100.0]), broken], pace_ms=100)
    with pytest.raises(RuntimeError, match="baseline"):
        StallRule.against([], pace_ms=100)
