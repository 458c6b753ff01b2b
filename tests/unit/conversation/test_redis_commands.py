"""The ACL list of Redis commands covers every command the scripts call."""

from __future__ import annotations

import re

from conversation import expiring_hash, limits, redis_scripts, search_scripts, usage
from conversation.redis_client import REDIS_COMMANDS, acl_rule

CALL = re.compile(r"redis\.p?call\('([A-Za-z]+)'")


def lua_sources() -> list[str]:
    return [
        text
        for module in (redis_scripts, limits, search_scripts, expiring_hash, usage)
        for name, text in vars(module).items()
        if name.isupper() and isinstance(text, str)
    ]


def test_every_command_a_script_calls_is_in_the_list() -> None:
    called = {m.lower() for text in lua_sources() for m in CALL.findall(text)}
    assert called, "the scripts were found"
    assert called <= set(REDIS_COMMANDS), sorted(called - set(REDIS_COMMANDS))


def test_the_acl_rule_names_keys_channels_and_commands() -> None:
    rule = acl_rule("chat")
    assert rule.startswith("~chat:* &chat:* -@all +evalsha")
    assert len(set(REDIS_COMMANDS)) == len(REDIS_COMMANDS)
