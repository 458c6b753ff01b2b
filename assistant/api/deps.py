"""Dependencies: the settings and provider built once in the lifespan, and the API key check."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from assistant.config import Settings
from assistant.errors import not_ready, unauthorized
from assistant.providers.base import Provider

bearer = HTTPBearer(auto_error=False, description="ASSISTANT_API_KEY, when it is set")

# Async on purpose, as in conversation/deps.py.


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_provider(request: Request) -> Provider:
    provider: Provider = request.app.state.provider
    return provider


SettingsDep = Annotated[Settings, Depends(get_settings)]
ProviderDep = Annotated[Provider, Depends(get_provider)]


async def require_api_key(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    expected = settings.assistant_api_key
    if expected is None or not expected.get_secret_value():
        return
    given = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(given.encode(), expected.get_secret_value().encode()):
        raise unauthorized()


async def ready_provider(provider: ProviderDep, settings: SettingsDep) -> Provider:
    if not provider.ready:
        raise not_ready(provider.name, settings.assistant_retry_after)
    return provider


ReadyProviderDep = Annotated[Provider, Depends(ready_provider)]
