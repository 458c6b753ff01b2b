"""Health probes: liveness answers at once, readiness waits for the provider (model loaded)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from assistant.api.deps import ProviderDep

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok", "starting", "failed"]
    ready: bool
    provider: str
    model: str
    detail: str | None = None
    stats: dict[str, int | bool] = {}


class Liveness(BaseModel):
    status: Literal["alive"] = "alive"


def health_of(provider: ProviderDep) -> Health:
    status: Literal["ok", "starting", "failed"] = (
        "ok" if provider.ready else "failed" if provider.failure else "starting"
    )
    return Health(
        status=status,
        ready=provider.ready,
        provider=provider.name,
        model=provider.model_id,
        detail=provider.failure,
        stats=provider.stats(),
    )


@router.get("/health", response_model=Health, summary="Status, provider, model and counters")
async def health(provider: ProviderDep) -> Health:
    return health_of(provider)


@router.get("/health/live", response_model=Liveness, summary="Liveness: the process answers")
async def live() -> Liveness:
    return Liveness()


@router.get(
    "/health/ready",
    response_model=Health,
    responses={503: {"model": Health, "description": "the provider is not ready yet"}},
    summary="Readiness: 200 once the provider can serve (model loaded), 503 before",
)
async def ready(provider: ProviderDep) -> JSONResponse:
    state = health_of(provider)
    return JSONResponse(state.model_dump(), status_code=200 if provider.ready else 503)
