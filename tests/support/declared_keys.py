"""A Redis client under which a script may touch only the keys its call declares in KEYS.

Redis checks a script's commands against the ACL key patterns of the user running it, at run
time, key by key. So each script call is sent as an ACL user whose patterns are exactly that
call's KEYS (one user per set of keys, made on first use): a command of the script on any
other key is refused with an error, and recorded in `ACL LOG` even when the caller swallows
the error. Redis 7 has no switch that makes it check declarations itself (a cluster checks
slots, not declarations), hence the users.

Scripts sent with `execute_command` (EVALSHA, EVAL) are checked; scripts queued in a
pipeline run as the default user.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from typing import Any

from redis.asyncio import ConnectionPool, Redis

from conversation.config import Settings
from conversation.redis_client import RedisClient
from conversation.redis_timing import Timings

SCRIPT_COMMANDS = {"EVALSHA", "EVAL"}
# The characters an ACL key pattern reads as glob syntax.
GLOB = re.compile(r"([*?\[\]\\])")


def exactly(key: str) -> str:
    """The ACL key pattern matching `key` alone."""
    return "~" + GLOB.sub(r"\\\1", key)


class DeclaredKeysOnly(Redis):
    """Runs each script as an ACL user allowed exactly the keys the call declares."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Users of this client only: closing it deletes them, which disconnects their clients.
        self._tag = secrets.token_hex(4)
        self._users: dict[str, asyncio.Future[Redis]] = {}

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        if str(args[0]).upper() not in SCRIPT_COMMANDS:
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        keys = [str(key) for key in args[3 : 3 + int(args[2])]]
        user = f"declared-{self._tag}-" + hashlib.sha1("\n".join(sorted(keys)).encode()).hexdigest()
        if user not in self._users:
            # Made once per user, however many calls ask for it at the same time.
            self._users[user] = asyncio.ensure_future(self._client_as(user, keys))
        client = await self._users[user]
        return await client.execute_command(*args, **options)  # type: ignore[no-untyped-call]

    async def _client_as(self, user: str, keys: list[str]) -> Redis:
        rule = ["reset", "on", "nopass", "+@all", *map(exactly, keys)]
        await super().execute_command("ACL", "SETUSER", user, *rule)  # type: ignore[no-untyped-call]
        kwargs = {**self.connection_pool.connection_kwargs, "username": user, "password": "-"}
        return Redis(connection_pool=ConnectionPool(**kwargs))

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        for user, made in self._users.items():
            await (await made).aclose(close_connection_pool=True)
            await super().execute_command("ACL", "DELUSER", user)  # type: ignore[no-untyped-call]
        self._users.clear()
        await super().aclose(close_connection_pool)


async def connect_declared_keys_only(settings: Settings, _: Timings) -> RedisClient:
    """As conversation.redis_client.connect_redis, for one redis-server, checking scripts."""
    client = DeclaredKeysOnly.from_url(settings.redis_url, decode_responses=True)
    assert isinstance(client, DeclaredKeysOnly)  # from_url builds `cls`
    return client
