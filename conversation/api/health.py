"""Liveness (`/api/health`, the tutorials' shape) and readiness (`/api/health/ready`).

Readiness answers what the chat page needs to know before and after a failed reply: would a
message sent now get an answer? It asks Redis and assistant's own `/health/ready`, both with
short timeouts, through the clients the app already holds.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError

from conversation.assistant_client import READY_TIMEOUT, AssistantState
from conversation.deps import AssistantDep, StoreDep
from conversation.models import Health, Readiness

router = APIRouter(tags=["health"])

ASSISTANT_MESSAGES: dict[AssistantState, str] = {
    "ready": "",
    "loading": "The model is still loading; replies start as soon as it is ready.",
    "failed": "The model could not be loaded; the assistant service's log says why.",
    "unreachable": "The assistant service (the model) cannot be reached right now.",
}


@router.get("/api/health")
async def health() -> Health:
    return Health()


async def redis_answers(store: StoreDep) -> bool:
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            return bool(await store.redis.ping())
    except (RedisError, OSError, TimeoutError):
        return False


@router.get(
    "/api/health/ready",
    response_model=Readiness,
    response_model_exclude_none=True,
    responses={503: {"model": Readiness, "description": "the model is loading or unreachable"}},
    summary="Readiness: 200 when Redis answers and assistant's model is loaded, 503 before",
)
async def ready(store: StoreDep, assistant: AssistantDep) -> JSONResponse:
    redis_ok, state = await asyncio.gather(redis_answers(store), assistant.readiness())
    if redis_ok and state == "ready":
        body = Readiness(status="ready", assistant="ready")
        return JSONResponse(body.model_dump(exclude_none=True))
    status: Literal["starting", "unavailable"] = (
        "starting" if redis_ok and state == "loading" else "unavailable"
    )
    parts = [] if redis_ok else ["The session store (Redis) is not answering."]
    if state != "ready":
        parts.append(ASSISTANT_MESSAGES[state])
    body = Readiness(status=status, assistant=state, message=" ".join(parts))
    return JSONResponse(body.model_dump(), status_code=503, headers={"Cache-Control": "no-store"})
