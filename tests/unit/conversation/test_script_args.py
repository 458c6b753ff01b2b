"""The Lua scripts' arguments: named once, unpacked at the top, built in one place."""

from __future__ import annotations

import pytest

from conversation import redis_scripts
from conversation.redis_scripts import BEGIN_TURN_ARGV, argv, argv_locals


def scripts() -> dict[str, str]:
    """The scripts that take arguments."""
    return {
        name: text
        for name, text in vars(redis_scripts).items()
        if name.isupper() and not name.startswith("_") and isinstance(text, str) and "ARGV" in text
    }


@pytest.mark.parametrize("name", sorted(scripts()))
def test_each_script_reads_its_arguments_into_named_locals_at_its_top(name: str) -> None:
    body = scripts()[name].removeprefix(redis_scripts._COMMON)
    lines = [line for line in body.splitlines() if line.strip() and not line.startswith("--")]
    reading = [i for i, line in enumerate(lines) if "ARGV" in line]
    # One statement, at the top (after the key names when the script names them).
    assert reading == list(range(reading[0], reading[0] + len(reading)))
    assert reading[0] <= 1, lines[: reading[0] + 1]
    assert lines[reading[0]].startswith("local ")


def test_the_helper_orders_arguments_as_the_script_unpacks_them() -> None:
    values = {name: f"v-{name}" for name in reversed(BEGIN_TURN_ARGV)}
    assert argv(BEGIN_TURN_ARGV, values) == [f"v-{name}" for name in BEGIN_TURN_ARGV]
    assert argv_locals(("a", "b")) == "local a, b = ARGV[1], ARGV[2]\n"
    assert argv_locals(BEGIN_TURN_ARGV) in redis_scripts.BEGIN_TURN


def test_a_missing_or_unknown_argument_is_refused_before_redis_sees_it() -> None:
    values = dict.fromkeys(BEGIN_TURN_ARGV, "x")
    del values["target"]
    with pytest.raises(ValueError, match="target"):
        argv(BEGIN_TURN_ARGV, values)
    with pytest.raises(ValueError, match="tagret"):
        argv(BEGIN_TURN_ARGV, {**dict.fromkeys(BEGIN_TURN_ARGV, "x"), "tagret": "x"})
