"""`GET /v1/models`: what the configured provider serves."""

from __future__ import annotations

from fastapi import APIRouter

from assistant.api.deps import ProviderDep
from common.protocol import ErrorResponse, ModelCard, ModelList

router = APIRouter()


@router.get(
    "/models",
    response_model=ModelList,
    responses={401: {"model": ErrorResponse, "description": "missing or wrong ASSISTANT_API_KEY"}},
    summary="List the models this assistant serves",
)
async def list_models(provider: ProviderDep) -> ModelList:
    return ModelList(data=[ModelCard(id=m, owned_by=provider.name) for m in provider.models()])
