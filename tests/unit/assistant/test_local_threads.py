"""The thread chooser: each kind of step timed with each choice, the faster one taken, the
others tried again now and then, and a change in which is faster followed."""

from __future__ import annotations

from assistant.providers.local_threads import ThreadChooser, kind


def run(chooser: ThreadChooser, tokens: int, cost: dict[int, float], steps: int) -> list[int]:
    """`steps` steps of `tokens` tokens, each taking `cost[threads]` seconds a token."""
    picked = []
    for _ in range(steps):
        threads = chooser.pick(tokens)
        chooser.record(tokens, threads, cost[threads] * tokens)
        picked.append(threads)
    return picked


def test_steps_are_told_apart_by_their_size() -> None:
    assert [kind(n) for n in (1, 2, 8, 9, 512)] == [0, 1, 1, 2, 2]


def test_each_choice_is_tried_then_the_faster_is_kept() -> None:
    chooser = ThreadChooser([1, 2], probe_every=50)
    picked = run(chooser, 1, {1: 0.013, 2: 0.009}, 49)
    assert picked[:4] == [2, 2, 1, 1]  # each warmed up, then timed
    assert set(picked[4:]) == {2}


def test_a_choices_first_step_is_not_timed() -> None:
    """The very first step (allocations, threads starting) is slow whatever follows."""
    chooser = ThreadChooser([1, 2], probe_every=50)
    assert chooser.pick(24) == 2
    chooser.record(24, 2, 24 * 0.0070)
    run(chooser, 24, {1: 0.0062, 2: 0.0033}, 3)
    assert chooser.best(kind(24)) == 2


def test_the_slower_choice_is_tried_again_every_probe_every_steps() -> None:
    chooser = ThreadChooser([1, 2], probe_every=10)
    picked = run(chooser, 1, {1: 0.013, 2: 0.009}, 44)
    assert [i for i, n in enumerate(picked) if n == 1] == [2, 3, 13, 23, 33, 43]


def test_a_change_in_which_is_faster_is_followed() -> None:
    """Other processes take the cores: two threads become slower than one, then the load
    passes and two are faster again; a few steps after each change the choice follows."""
    chooser = ThreadChooser([1, 2], probe_every=10)
    run(chooser, 1, {1: 0.013, 2: 0.009}, 20)
    loaded = run(chooser, 1, {1: 0.015, 2: 0.090}, 30)
    assert loaded[-20:].count(2) <= 2  # the probes
    quiet = run(chooser, 1, {1: 0.013, 2: 0.009}, 40)
    assert quiet[-15:].count(2) >= 13


def test_kinds_of_step_are_chosen_for_separately() -> None:
    """A prompt's many tokens may split well between threads when one token does not."""
    chooser = ThreadChooser([1, 2], probe_every=50)
    one = run(chooser, 1, {1: 0.013, 2: 0.020}, 20)
    prompt = run(chooser, 24, {1: 0.006, 2: 0.004}, 20)
    assert set(one[4:]) == {1}
    assert set(prompt[4:]) == {2}


def test_one_choice_is_always_taken() -> None:
    chooser = ThreadChooser([3], probe_every=2)
    assert set(run(chooser, 1, {3: 0.01}, 10)) == {3}
