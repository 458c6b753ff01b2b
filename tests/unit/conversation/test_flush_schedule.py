"""The stream-write schedule, on a clock the test moves by hand."""

from __future__ import annotations

import pytest

from conversation.config import Settings
from conversation.flush_schedule import FlushSchedule, Write

# 50 ms between writes, 1 s for unwatched text, a 6 s lease (renewed each 2 s), a 600 s
# stream retention (its expiry renewed each 300 s).
SETTINGS = Settings(
    stream_flush_ms=50,
    stream_unwatched_flush_ms=1000,
    generation_lease=6,
    stream_retention=600,
    session_ttl=3600,
)


@pytest.fixture
def schedule() -> FlushSchedule:
    return FlushSchedule.start(SETTINGS, now=100.0)


def write_at(schedule: FlushSchedule, now: float, watched: bool = False) -> float:
    """Write whatever `next_write` says at `now`, ending at once; returns its time."""
    at = schedule.next_write(now, text_waiting=True)
    assert at is not None
    schedule.written(schedule.plan(at, text_waiting=True), at, at, watched)
    return at


def test_the_first_text_is_written_at_once_with_the_expiry(schedule: FlushSchedule) -> None:
    assert schedule.next_write(100.2, text_waiting=True) == 100.2
    assert schedule.plan(100.2, text_waiting=True) == Write(expire=True, renew=False)


def test_unwatched_text_waits_until_its_oldest_part_is_a_second_old(
    schedule: FlushSchedule,
) -> None:
    write_at(schedule, 100.2)
    assert schedule.next_write(100.5, text_waiting=True) == pytest.approx(101.5)
    # The expiry went with the first text: not again before half the retention.
    assert not schedule.plan(101.5, text_waiting=True).expire


def test_watched_text_goes_at_once_but_never_closer_than_the_gap(
    schedule: FlushSchedule,
) -> None:
    write_at(schedule, 100.2, watched=True)
    assert schedule.next_write(100.21, text_waiting=True) == pytest.approx(100.25)
    assert schedule.next_write(100.4, text_waiting=True) == 100.4


def test_the_gap_counts_from_the_end_of_the_last_write(schedule: FlushSchedule) -> None:
    plan = schedule.plan(100.2, text_waiting=True)
    schedule.written(plan, began=100.2, ended=100.3, watched=True)
    assert schedule.next_write(100.31, text_waiting=True) == pytest.approx(100.35)


def test_without_text_nothing_is_written_until_the_lease_is_due(
    schedule: FlushSchedule,
) -> None:
    write_at(schedule, 100.2)
    assert schedule.next_write(101.0, text_waiting=False) is None
    assert schedule.renew_due == 102.0
    # A timer that fires a hair early still renews.
    assert schedule.next_write(101.99, text_waiting=False) == 102.0
    assert schedule.plan(102.0, text_waiting=False) == Write(expire=False, renew=True)


def test_waiting_text_is_written_with_the_renewal_when_that_comes_first(
    schedule: FlushSchedule,
) -> None:
    write_at(schedule, 100.2)
    assert schedule.next_write(101.5, text_waiting=True) == 102.0
    assert schedule.plan(102.0, text_waiting=True).renew


def test_a_renewal_moves_the_next_one_a_third_of_the_lease_on(
    schedule: FlushSchedule,
) -> None:
    schedule.written(Write(expire=False, renew=True), began=102.0, ended=102.01, watched=False)
    assert schedule.renew_due == 104.0


def test_the_expiry_is_carried_again_each_half_retention(schedule: FlushSchedule) -> None:
    write_at(schedule, 100.0)
    assert not schedule.plan(399.9, text_waiting=True).expire
    assert schedule.plan(400.0, text_waiting=True).expire
    # Only ever with text: a write without text never creates the stream.
    assert not schedule.plan(400.0, text_waiting=False).expire


def test_the_stream_never_outlives_its_session() -> None:
    short = FlushSchedule.start(Settings(stream_retention=600, session_ttl=60), now=0.0)
    assert short.refresh_expire == 30


def test_a_failed_write_is_tried_again_with_the_lease_soon(schedule: FlushSchedule) -> None:
    schedule.failed(began=100.2, ended=100.3)
    # The unwatched age, below the lease's renewal period: the lease survives a failure.
    assert schedule.next_write(100.31, text_waiting=True) == pytest.approx(101.2)
    assert schedule.plan(101.2, text_waiting=True).renew


def test_a_failed_write_is_spaced_like_writes(schedule: FlushSchedule) -> None:
    write_at(schedule, 100.0, watched=True)
    schedule.failed(began=100.2, ended=100.3)
    assert schedule.next_write(100.31, text_waiting=True) == pytest.approx(100.35)


def test_the_unwatched_age_is_never_below_the_gap() -> None:
    odd = FlushSchedule.start(Settings(stream_flush_ms=200, stream_unwatched_flush_ms=100), 0.0)
    assert odd.unwatched_age == 0.2
