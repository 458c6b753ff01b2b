"""The Conversation service: `uvicorn conversation.app:create_app --factory`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

from common.heap import freeze_startup_objects
from conversation.api import compat, health, messages, sessions, ws
from conversation.api.limit_errors import limit_exceeded
from conversation.assistant_client import AssistantClient, create_http_session
from conversation.config import Settings
from conversation.generation import Hub
from conversation.limits import LimitExceeded, Limits
from conversation.store import Store
from conversation.turns import Turns

log = logging.getLogger("conversation")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    # Blocking pool: past its 100 connections a burst of commands waits for a free one
    # instead of failing at once (the default pool raises "Too many connections", a 503).
    pool = BlockingConnectionPool.from_url(
        settings.redis_url, decode_responses=True, health_check_interval=30, timeout=10
    )
    redis = Redis.from_pool(pool)
    http = create_http_session(settings)
    store = Store(redis, settings)
    assistant = AssistantClient(http, settings)
    hub = Hub(store, assistant, redis, settings)
    app.state.store = store
    app.state.assistant = assistant
    app.state.limits = limits = Limits(redis, settings)
    app.state.turns = Turns(store, hub, settings, limits)
    await hub.start_background()
    freeze_startup_objects()
    try:
        yield
    finally:
        await hub.stop()
        await http.close()
        await redis.aclose()


async def redis_unavailable(_: Request, exc: Exception) -> JSONResponse:
    log.error("Redis error: %r", exc)
    return JSONResponse(
        {"detail": "The session store (Redis) is unavailable right now; try again shortly."},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
    )


async def internal_error(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return JSONResponse(
        {"detail": "The conversation service failed on this request; try again."},
        status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )


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
    app.add_exception_handler(RedisError, redis_unavailable)
    app.add_exception_handler(LimitExceeded, limit_exceeded)
    app.add_exception_handler(Exception, internal_error)
    for module in (health, sessions, messages, ws, compat):
        app.include_router(module.router)
    return app
