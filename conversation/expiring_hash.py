"""Writing a hash field and the hash's expiry in one step: a hash of ours never exists
without an expiry, not even between two commands (a process can die between them)."""

from __future__ import annotations

from conversation.redis_client import RedisClient

# KEYS: the hash. ARGV: ttl (seconds), field, value.
HSET_EXPIRING = r"""
local ttl, field, value = ARGV[1], ARGV[2], ARGV[3]
redis.call('HSET', KEYS[1], field, value)
redis.call('EXPIRE', KEYS[1], ttl)
"""


async def hset_expiring(redis: RedisClient, key: str, field: str, value: str, ttl: int) -> None:
    await redis.register_script(HSET_EXPIRING)(keys=[key], args=[ttl, field, value])
