"""A Redis client that times each round trip into `ConversationMetrics.redis_latency`.

Commands are labelled by name, the store's Lua scripts by their name in
`conversation.redis_scripts` (an EVALSHA alone says nothing about which script was slow), and a
pipeline by its distinct commands: a label set as small as the code's own calls. The
pub/sub listener's connection is not timed (it waits for messages by design).
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from prometheus_client import Histogram
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline, RedisCluster

from conversation import redis_scripts


def script_names() -> dict[str, str]:
    """The SHA1 of each of the store's scripts, as EVALSHA names it, to the script's name."""
    return {
        hashlib.sha1(text.encode()).hexdigest(): name.lower()
        for name, text in vars(redis_scripts).items()
        if name.isupper() and not name.startswith("_") and isinstance(text, str)
    }


class Timings:
    """The histogram's children, one per label, made on first use."""

    def __init__(self, histogram: Histogram) -> None:
        self._histogram = histogram
        self._children: dict[str, Any] = {}
        self._scripts = script_names()

    def observe(self, label: str, seconds: float) -> None:
        child = self._children.get(label)
        if child is None:
            child = self._children[label] = self._histogram.labels(label)
        child.observe(seconds)

    def command_label(self, args: tuple[Any, ...]) -> str:
        name = str(args[0]).upper() if args else "?"
        if name == "EVALSHA" and len(args) > 1:
            return self._scripts.get(str(args[1]), name)
        return name

    @staticmethod
    def pipeline_label(names: set[str]) -> str:
        return ",".join(sorted(names)) or "EMPTY"


class TimedPipeline(Pipeline):
    timings: Timings | None = None

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        timings = self.timings
        if timings is None:
            return await super().execute(raise_on_error)
        label = timings.pipeline_label({str(args[0]).upper() for args, _ in self.command_stack})
        began = time.perf_counter()
        try:
            return await super().execute(raise_on_error)
        finally:
            timings.observe(label, time.perf_counter() - began)


class TimedRedis(Redis):
    timings: Timings | None = None

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        timings = self.timings
        if timings is None:
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        began = time.perf_counter()
        try:
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        finally:
            timings.observe(timings.command_label(args), time.perf_counter() - began)

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        pipe = TimedPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)
        pipe.timings = self.timings
        return pipe


class TimedClusterPipeline(ClusterPipeline):
    """A cluster pipeline sends one batch per node; its label and time cover them all."""

    timings: Timings | None = None

    def __init__(self, client: RedisCluster, transaction: bool | None = None) -> None:
        super().__init__(client, transaction)
        self.names: set[str] = set()

    def execute_command(self, *args: Any, **kwargs: Any) -> ClusterPipeline:
        if args:
            self.names.add(str(args[0]).upper())
        return super().execute_command(*args, **kwargs)

    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> Any:
        timings, names = self.timings, self.names
        self.names = set()
        if timings is None:
            return await super().execute(raise_on_error, allow_redirections)
        began = time.perf_counter()
        try:
            return await super().execute(raise_on_error, allow_redirections)
        finally:
            timings.observe(timings.pipeline_label(names), time.perf_counter() - began)


class TimedRedisCluster(RedisCluster):
    """Each command timed from the call to its answer, redirections and retries included."""

    timings: Timings | None = None

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        timings = self.timings
        if timings is None:
            return await super().execute_command(*args, **kwargs)
        began = time.perf_counter()
        try:
            return await super().execute_command(*args, **kwargs)
        finally:
            timings.observe(timings.command_label(args), time.perf_counter() - began)

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> Any:
        if shard_hint:
            return super().pipeline(transaction, shard_hint)  # refused, as RedisCluster does
        pipe = TimedClusterPipeline(self, transaction)  # type: ignore[abstract]
        pipe.timings = self.timings
        return pipe


def timed_client(pool: ConnectionPool, timings: Timings) -> TimedRedis:
    """A client on `pool` (closing it with the client, as `Redis.from_pool`)."""
    client = TimedRedis(connection_pool=pool)
    client.auto_close_connection_pool = True
    client.timings = timings
    return client
