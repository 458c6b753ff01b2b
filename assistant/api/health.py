"""Health probes: liveness answers at once; readiness is the default model's provider having
started (the local model loaded; a remote provider's client made). Each model's own readiness,
reachability included, is in `GET /v1/models`."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from assistant.api.deps import RegistryDep

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


def health_of(registry: RegistryDep) -> Health:
    model = registry.default_model()
    provider = model.upstream.provider_for(model.id)
    status: Literal["ok", "starting", "failed"] = (
        "ok" if provider.ready else "failed" if provider.failure else "starting"
    )
    return Health(
        status=status,
        ready=provider.ready,
        provider=provider.name,
        model=model.id,
        detail=provider.failure,
        stats=provider.stats(),
    )


@router.get(
    "/health", response_model=Health, summary="Status of the default model: provider, counters"
)
async def health(registry: RegistryDep) -> Health:
    return health_of(registry)


@router.get("/health/live", response_model=Liveness, summary="Liveness: the process answers")
async def live() -> Liveness:
    return Liveness()


@router.get(
    "/health/ready",
    response_model=Health,
    responses={503: {"model": Health, "description": "the default model is not ready yet"}},
    summary="Readiness: 200 once the default model's provider can serve (model loaded), 503 before",
)
async def ready(registry: RegistryDep) -> JSONResponse:
    state = health_of(registry)
    return JSONResponse(state.model_dump(), status_code=200 if state.ready else 503)
