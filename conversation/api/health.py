from __future__ import annotations

from fastapi import APIRouter

from conversation.models import Health

router = APIRouter(tags=["health"])


@router.get("/api/health")
async def health() -> Health:
    return Health()
