"""The embedded model's queue order between users (`fair_index`): a user holding less of the
model goes ahead of one holding more; arrival order holds among equals."""

from __future__ import annotations

from collections import Counter

from assistant.providers.local_batch import fair_index


def order(arrivals: list[str | None], running: dict[str | None, int]) -> list[str | None]:
    """The queue after each arrival was put where `fair_index` says (none admitted)."""
    queue: list[str | None] = []
    held = Counter(running)
    for user in arrivals:
        queue.insert(fair_index(queue, held, user), user)
    return queue


def test_one_user_alone_is_served_in_arrival_order() -> None:
    assert order(["a", "a", "a"], {"a": 4}) == ["a", "a", "a"]


def test_a_user_with_nothing_running_goes_ahead_of_one_holding_every_slot() -> None:
    assert order(["a", "a", "b"], {"a": 4}) == ["b", "a", "a"]


def test_users_take_turns_whatever_their_arrival() -> None:
    queue = order(["a", "a", "a", "b", "b", "c"], {})
    assert queue == ["a", "b", "c", "a", "b", "a"]


def test_equal_holdings_keep_arrival_order() -> None:
    assert order(["b", "a"], {"a": 1, "b": 1}) == ["b", "a"]


def test_running_jobs_count_as_turns_already_taken() -> None:
    # b holds two slots, a one: a's second request goes before b's first waiting one.
    assert order(["b", "a"], {"a": 1, "b": 2}) == ["a", "b"]


def test_requests_without_a_user_share_one() -> None:
    assert order([None, None, "a"], {None: 1}) == ["a", None, None]
