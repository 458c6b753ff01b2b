"""The Conversation service: `uvicorn conversation.app:create_app --factory`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster

from common.heap import freeze_startup_objects
from conversation.api import compat, errors, health, messages, sessions, ws
from conversation.assistant_client import AssistantClient, create_http_session
from conversation.config import Settings
from conversation.generation import Hub
from conversation.store import RedisClient, Store
from conversation.turns import Turns

log = logging.getLogger("conversation")


def connect_redis(settings: Settings) -> RedisClient:
    """REDIS_URL: redis:// or rediss:// (TLS), with a user and password for ACLs; a Redis
    Cluster with REDIS_CLUSTER=true (any node's address: the client learns the others)."""
    if settings.redis_cluster:
        return RedisCluster.from_url(settings.redis_url, decode_responses=True)
    # Blocking pool: past its 100 connections a burst of commands waits for a free one
    # instead of failing at once (the default pool raises "Too many connections", a 503).
    pool = BlockingConnectionPool.from_url(
        settings.redis_url, decode_responses=True, health_check_interval=30, timeout=10
    )
    return Redis.from_pool(pool)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    redis = connect_redis(settings)
    if isinstance(redis, RedisCluster):
        # Learn the slots now: the cancel listener's pub/sub needs them before any command.
        await redis.initialize()
    http = create_http_session(settings)
    store = Store(redis, settings)
    assistant = AssistantClient(http, settings)
    hub = Hub(store, assistant, redis, settings)
    app.state.store = store
    app.state.assistant = assistant
    app.state.turns = Turns(store, hub, settings)
    await hub.start_background()
    freeze_startup_objects()
    try:
        yield
    finally:
        await hub.drain(settings.shutdown_grace_period)
        await hub.stop()
        await http.close()
        await redis.aclose()


def create_app(settings: Settings | None = None) -> FastAPI:
    app = FastAPI(
        title="Conversation",
        description="Chat sessions, history and resumable reply streams, state in Redis.",
        lifespan=lifespan,
        # Under /api so the API reference is reachable through nginx, the only public door.
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
    )
    app.state.settings = settings or Settings()
    errors.install(app)
    for module in (health, sessions, messages, ws, compat):
        app.include_router(module.router)
    return app
