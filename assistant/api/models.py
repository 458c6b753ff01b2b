"""`GET /v1/models`: every model this assistant serves, with its provider and readiness."""

from __future__ import annotations

from fastapi import APIRouter

from assistant.api.deps import RegistryDep
from common.protocol import ErrorResponse, ModelList

router = APIRouter()


@router.get(
    "/models",
    response_model=ModelList,
    responses={401: {"model": ErrorResponse, "description": "missing or wrong ASSISTANT_API_KEY"}},
    summary="List the models this assistant serves, each with its provider and readiness",
)
async def list_models(registry: RegistryDep) -> ModelList:
    return ModelList(data=registry.cards())
