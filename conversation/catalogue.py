"""Assistant's catalogue of models, as conversation knows it: cached, refreshed in the
background, and the one place that says which model ids a chat may use.

Assistant answers `GET /v1/models` with each model's id, provider, display name, context
length, readiness and whether it is the default. Older assistants send only OpenAI's
`{id, owned_by}`: the rest then takes defaults (named by its id, ready, the first listed is
the default), so a one-model deployment is a catalogue of one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ValidationError

log = logging.getLogger(__name__)


class ModelInfo(BaseModel):
    """One model as the UI sees it: never assistant's address or keys."""

    id: str
    display_name: str
    provider: str
    context_length: int | None = None
    ready: bool = True
    default: bool = False


class CatalogueUnavailable(Exception):
    """Assistant's list of models could not be read (and none was read before)."""


class UnknownModel(Exception):
    """A model id the catalogue does not hold; `valid`: the ids it does."""

    def __init__(self, model: str, valid: list[str]) -> None:
        super().__init__(f"unknown model {model!r}")
        self.model = model
        self.valid = valid


def parse_models(body: Any) -> list[ModelInfo]:
    """Assistant's `/v1/models` answer as the catalogue; cards it cannot read are skipped."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        raise ValueError("no `data` list")
    models: list[ModelInfo] = []
    for card in data:
        if not isinstance(card, dict) or not isinstance(card.get("id"), str):
            continue
        try:
            models.append(
                ModelInfo(
                    id=card["id"],
                    display_name=str(card.get("display_name") or card["id"]),
                    provider=str(card.get("provider") or card.get("owned_by") or ""),
                    context_length=card.get("context_length"),
                    ready=card.get("ready", True) is not False,
                    default=card.get("default") is True,
                )
            )
        except ValidationError:
            log.warning("skipping an unreadable model card from assistant: %r", card)
    if models and not any(m.default for m in models):
        models[0] = models[0].model_copy(update={"default": True})
    return models


Fetch = Callable[[], Awaitable[Any]]
# Seconds between reads made for a request while the list cannot be read.
RETRY_EVERY = 1.0


class Catalogue:
    """The models a chat may use. Read from assistant at first use, then every
    `refresh_every` seconds in the background; a failed refresh keeps the last list."""

    def __init__(self, fetch: Fetch, refresh_every: float) -> None:
        self._fetch = fetch
        self._refresh_every = refresh_every
        self._models: list[ModelInfo] | None = None
        self._read_at = float("-inf")
        self._tried_at = float("-inf")
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> list[ModelInfo] | None:
        """Read the list again; the last good one when assistant does not answer."""
        async with self._lock:
            self._tried_at = time.monotonic()
            try:
                self._models = parse_models(await self._fetch())
                self._read_at = time.monotonic()
            except Exception as exc:
                log.warning("could not read assistant's models: %r", exc)
            return self._models

    async def models(self) -> list[ModelInfo]:
        """The catalogue, read now if it never was or has gone stale (the background
        refresh stopped)."""
        models, now = self._models, time.monotonic()
        stale = models is None or now - self._read_at > 3 * self._refresh_every
        # While assistant does not answer, requests ask it again at most once a second.
        if stale and now - self._tried_at >= RETRY_EVERY:
            models = await self.refresh()
        if models is None:
            raise CatalogueUnavailable
        return models

    async def default_id(self) -> str | None:
        """The default model's id; None when assistant cannot be asked (it then uses its own)."""
        with contextlib.suppress(CatalogueUnavailable):
            return next((m.id for m in await self.models() if m.default), None)
        return None

    async def check(self, model: str) -> str:
        """`model` if the catalogue holds it; else UnknownModel listing the ids it holds."""
        models = await self.models()
        if not any(m.id == model for m in models):
            raise UnknownModel(model, [m.id for m in models])
        return model

    async def title_model(self, configured: str, chat_model: str | None) -> str | None:
        """TITLE_MODEL if set and listed, else the local model, else the chat's own."""
        with contextlib.suppress(CatalogueUnavailable):
            models = await self.models()
            if configured:
                if any(m.id == configured for m in models):
                    return configured
            else:
                local = next((m.id for m in models if m.provider == "local"), None)
                if local is not None:
                    return local
        return chat_model

    def start(self) -> None:
        self._task = asyncio.create_task(self._refresh_forever(), name="models-refresh")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _refresh_forever(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self._refresh_every)
