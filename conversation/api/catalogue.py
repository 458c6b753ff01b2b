"""`GET /api/models`: the models a chat may use, for the UI's picker; and the check every
route that takes a model id makes against that list."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import APIRouter, Depends, HTTPException, status
from starlette.requests import HTTPConnection

from conversation.catalogue import Catalogue, CatalogueUnavailable, UnknownModel
from conversation.models import ModelCatalogue

router = APIRouter(prefix="/api/models", tags=["models"])

# Seconds a client refused for want of the catalogue is asked to wait: it is read again
# within CATALOGUE_REFRESH_INTERVAL, and assistant is usually back within seconds.
RETRY_AFTER = 2


async def get_catalogue(conn: HTTPConnection) -> Catalogue:
    return cast(Catalogue, conn.app.state.catalogue)


CatalogueDep = Annotated[Catalogue, Depends(get_catalogue)]


def catalogue_unavailable() -> HTTPException:
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        "The list of models cannot be read from the assistant service right now; "
        f"try again in {RETRY_AFTER} s.",
        headers={"Retry-After": str(RETRY_AFTER)},
    )


async def checked_model(catalogue: Catalogue, model: str) -> str:
    """`model` when the catalogue holds it; else a 422 naming the body's `model` field and
    listing the valid ids."""
    try:
        return await catalogue.check(model)
    except CatalogueUnavailable:
        raise catalogue_unavailable() from None
    except UnknownModel as exc:
        valid = ", ".join(exc.valid) or "none"
        error = {
            "loc": ["body", "model"],
            "msg": f"Unknown model {exc.model!r}; the models are: {valid}.",
            "type": "unknown_model",
            "valid": exc.valid,
        }
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, [error]) from None


@router.get("")
async def list_models(catalogue: CatalogueDep) -> ModelCatalogue:
    """Each model's id, display name, provider, context length, readiness, and the default."""
    try:
        models = await catalogue.models()
    except CatalogueUnavailable:
        raise catalogue_unavailable() from None
    default = next((m.id for m in models if m.default), None)
    return ModelCatalogue(models=models, default=default)
