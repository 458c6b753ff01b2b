"""The connection to Redis: one server (or a managed one behind one address), or a Cluster."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from conversation.config import Settings
from conversation.redis_timing import TimedRedisCluster, Timings, timed_client

RedisClient = Redis | RedisCluster
# Tries after the first for a command whose connection failed (0.05, 0.1, 0.2 s apart).
RETRIES = 3

# Every command conversation sends, itself or from its scripts (conversation.redis_scripts,
# conversation.limits): an ACL user needs these and no others. conversation/README.md shows
# the ACL line; tests check the list against the scripts and against a locked-down Redis.
REDIS_COMMANDS = (
    # sent by conversation itself
    *("evalsha", "script|load", "ping", "publish", "subscribe", "unsubscribe"),
    *("exists", "get", "set", "hget", "hset", "hgetall", "ttl", "xread"),
    *("zrange", "zrem", "zrevrange"),
    # called by its scripts
    *("del", "expire", "pexpire", "pttl", "hdel", "hexists", "hmget", "hsetnx", "hincrby"),
    *("incr", "incrby", "lindex", "llen", "lpos", "lrange", "rpop", "rpush"),
    *("ltrim", "hlen"),
    *("xadd", "xrange", "zadd", "zcard", "zremrangebyscore", "zscore", "time"),
    # search (conversation.search, conversation.search_scripts)
    *("hstrlen", "zrangebylex"),
)


def acl_rule(prefix: str) -> str:
    """The ACL a conversation user needs: its keys and channels, those commands only."""
    commands = " ".join(f"+{command}" for command in REDIS_COMMANDS)
    return f"~{prefix}:* &{prefix}:* -@all {commands}"


async def connect_redis(settings: Settings, timings: Timings) -> RedisClient:
    """REDIS_URL: redis:// or rediss:// (TLS), with a user and password for ACLs; a Redis
    Cluster with REDIS_CLUSTER=true (any node's address: the client learns the others).
    Round trips are timed into `timings`."""
    if settings.redis_cluster:
        cluster = TimedRedisCluster.from_url(settings.redis_url, decode_responses=True)
        assert isinstance(cluster, TimedRedisCluster)  # from_url builds `cls`
        cluster.timings = timings
        # Learn the slots now: the cancel listener's pub/sub needs them before any command.
        await cluster.initialize()
        return cluster
    # Blocking pool: past its 100 connections a burst of commands waits for a free one
    # instead of failing at once (the default pool raises "Too many connections", a 503).
    # A command whose connection broke (Redis restarted, a failover) is sent again on a new
    # one, a few times, backing off: every script is safe to run twice (conversation.redis_scripts).
    # Without it, each pooled connection to the Redis that went away failed one request.
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        decode_responses=True,
        health_check_interval=30,
        timeout=10,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), RETRIES),
    )
    return timed_client(pool, timings)
