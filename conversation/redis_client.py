"""The connection to Redis: one server (or a managed one behind one address), or a Cluster."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster

from conversation.config import Settings
from conversation.redis_timing import Timings, timed_client

RedisClient = Redis | RedisCluster


async def connect_redis(settings: Settings, timings: Timings) -> RedisClient:
    """REDIS_URL: redis:// or rediss:// (TLS), with a user and password for ACLs; a Redis
    Cluster with REDIS_CLUSTER=true (any node's address: the client learns the others).
    Round trips to one server are timed into `timings`; a cluster's are not (yet)."""
    if settings.redis_cluster:
        cluster = RedisCluster.from_url(settings.redis_url, decode_responses=True)
        # Learn the slots now: the cancel listener's pub/sub needs them before any command.
        await cluster.initialize()
        return cluster
    # Blocking pool: past its 100 connections a burst of commands waits for a free one
    # instead of failing at once (the default pool raises "Too many connections", a 503).
    pool = BlockingConnectionPool.from_url(
        settings.redis_url, decode_responses=True, health_check_interval=30, timeout=10
    )
    return timed_client(pool, timings)
