"""The Conversation service: `uvicorn conversation.app:create_app --factory`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from common import logs
from common.gc_freeze import freeze_startup_objects
from common.metrics import Observe
from conversation.api import (
    branches,
    compat,
    errors,
    exports,
    health,
    messages,
    search,
    sessions,
    shares,
    ws,
)
from conversation.api import catalogue as catalogue_api
from conversation.api import usage as usage_api
from conversation.assistant_client import AssistantClient, create_http_session
from conversation.catalogue import Catalogue
from conversation.config import Settings
from conversation.hub import Hub
from conversation.limits import Limits
from conversation.metrics import ConversationMetrics
from conversation.redis_client import connect_redis
from conversation.redis_timing import Timings
from conversation.search import Search
from conversation.shares import Shares
from conversation.store import Store
from conversation.titles import Titles
from conversation.turns import Turns
from conversation.usage import UsageBook

log = logging.getLogger("conversation")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    metrics: ConversationMetrics = app.state.metrics
    redis = await connect_redis(settings, Timings(metrics.redis_latency))
    http = create_http_session(settings)
    store = Store(redis, settings)
    assistant = AssistantClient(http, settings, latency=metrics.assistant_latency)
    catalogue = Catalogue(assistant.models, settings.catalogue_refresh_interval)
    titles = Titles(store, assistant, catalogue, settings, metrics)
    usage = UsageBook(redis, settings.key_prefix, settings.usage_retention_days)
    hub = Hub(store, assistant, redis, settings, titles, usage, metrics=metrics)
    app.state.store = store
    app.state.shares = Shares(store)
    app.state.search = Search(store)
    app.state.assistant = assistant
    app.state.catalogue = catalogue
    app.state.usage = usage
    app.state.limits = limits = Limits(redis, settings)
    app.state.turns = Turns(store, hub, settings, limits)
    await hub.start_background()
    catalogue.start()
    freeze_startup_objects()
    try:
        yield
    finally:
        await hub.drain(settings.shutdown_grace_period)
        await hub.stop()
        await titles.stop()
        await catalogue.stop()
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
    app.state.settings = settings = settings or Settings()
    logs.configure(settings.log_format, settings.log_level)
    app.state.metrics = metrics = ConversationMetrics()
    errors.install(app)
    routers = (health, catalogue_api, sessions, usage_api, messages, branches, ws, compat)
    for module in (*routers, exports, shares, search):
        app.include_router(module.router)
    app.add_middleware(Observe, metrics=metrics)
    return app
