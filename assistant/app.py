"""The assistant service: `uvicorn assistant.app:create_app --factory`."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from assistant.api import chat, health, models
from assistant.api.deps import require_api_key
from assistant.config import Settings
from assistant.errors import (
    AssistantError,
    http_error,
    internal,
    invalid_request,
    log_failure,
)
from assistant.limits import BodySizeLimit
from assistant.registry import Registry
from common import logs
from common.gc_freeze import freeze_startup_objects
from common.metrics import Observe, ServiceMetrics

log = logging.getLogger("assistant")


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    registry: Registry = app.state.registry
    await registry.start()
    freeze_startup_objects()
    try:
        yield
    finally:
        await registry.close()


def error_response(error: AssistantError) -> Response:
    return Response(
        error.json(),
        status_code=error.status,
        media_type="application/json",
        headers=error.headers(),
    )


async def on_assistant_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, AssistantError)
    log_failure(exc)
    return error_response(exc)


async def on_unexpected_error(_: Request, exc: Exception) -> Response:
    """A bug still answers in OpenAI's error shape, with no exception text for the caller.

    Starlette re-raises the exception after this answer, so the server logs its traceback.
    """
    return error_response(internal("The assistant failed unexpectedly."))


async def on_http_error(_: Request, exc: Exception) -> Response:
    """Starlette's own refusals (unknown path, wrong method, a body that is not JSON) in
    OpenAI's error shape too, not FastAPI's `{"detail": ...}`."""
    assert isinstance(exc, HTTPException)
    response = error_response(http_error(exc.status_code, exc.detail))
    response.headers.update(exc.headers or {})  # Allow, on a 405
    return response


async def on_validation_error(_: Request, exc: Exception) -> Response:
    """OpenAI answers a malformed request with 400 and names the offending field."""
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    location = [str(part) for part in first.get("loc", ()) if part != "body"]
    param = ".".join(location) or None
    where = f"{param}: " if param else ""
    return error_response(invalid_request(f"{where}{first.get('msg', 'invalid value')}", param))


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    logs.configure(settings.log_format, settings.log_level)
    # One INFO line per upstream request is noise at this service's request rates.
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    logging.getLogger("openai").setLevel(logging.WARNING)
    app = FastAPI(
        title="chatstack assistant",
        summary="One OpenAI-compatible API in front of the local model, OpenAI-compatible "
        "servers and Hugging Face.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    # Built here, not in the lifespan: a wrong MODELS_FILE stops the service before it
    # listens, with the message naming the entry (CatalogueError).
    app.state.registry = Registry.from_settings(settings)
    app.state.metrics = metrics = ServiceMetrics()
    app.add_exception_handler(AssistantError, on_assistant_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected_error)
    app.add_middleware(BodySizeLimit, limit=settings.assistant_max_body_bytes)
    # Outermost: it counts the body-size refusals too.
    app.add_middleware(Observe, metrics=metrics)
    v1 = [Depends(require_api_key)]
    app.include_router(chat.router, prefix="/v1", tags=["openai"], dependencies=v1)
    app.include_router(models.router, prefix="/v1", tags=["openai"], dependencies=v1)
    app.include_router(health.router)
    return app
