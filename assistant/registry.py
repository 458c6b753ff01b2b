"""The models this assistant serves now, and the upstream behind each: routing by `model`,
the `/v1/models` listing, and the background checks that keep both current.

The table starts as the catalogue's `[[models]]`; providers with `discover = true` add what
their `GET /models` offers (unless `allow_only_listed`), at start and every
`MODELS_REFRESH_SECONDS`. A refresh builds a new table and swaps it in whole, so a request
always routes on one consistent table and never waits for a refresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from assistant import generation
from assistant.catalogue import Catalogue, ProviderSpec, from_file, single_provider
from assistant.config import SMOLLM2_FILE, Settings
from assistant.errors import AssistantError, unknown_model
from assistant.providers.base import Provider
from assistant.providers.openai_compatible import Endpoint, Listed, OpenAIProvider
from assistant.upstreams import Upstream
from common.protocol import ModelCard, now

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Served:
    id: str
    upstream: Upstream
    display_name: str
    context_length: int | None


def local_model_id(settings: Settings) -> str:
    from assistant.providers.local import model_name

    return model_name(settings.local_model_path or Path(SMOLLM2_FILE))


def build_upstream(
    spec: ProviderSpec, catalogue: Catalogue, settings: Settings, models: list[str]
) -> Upstream:
    # The local and Hugging Face providers are imported on demand: the local one loads
    # llama.cpp's native library, which a deployment of remote models does not need.
    key = catalogue.keys.get(spec.name)
    shared: Provider | None = None
    per_model: dict[str, Provider] = {}
    if spec.kind == "openai":
        s = settings
        backstop = max(spec.timeout or s.upstream_first_token_timeout, s.upstream_idle_timeout)
        shared = OpenAIProvider(
            Endpoint(
                name=spec.name,
                base_url=spec.base_url or s.openai_base_url,
                api_key=key,
                model=models[0] if models else s.openai_model,
                max_tokens=spec.max_tokens or s.openai_max_tokens,
                connect_timeout=s.upstream_connect_timeout,
                read_timeout=backstop + s.upstream_connect_timeout,
                max_connections=spec.max_concurrency or s.upstream_max_connections,
                keepalive_timeout=s.upstream_keepalive_timeout,
                retry_after=s.assistant_retry_after,
            )
        )
    elif spec.kind == "huggingface":
        from assistant.providers.huggingface import HuggingFaceProvider

        for model in models:
            update: dict[str, object] = {"hf_model": model}
            if catalogue.source != "settings":  # the file's entry, not the HF_* settings
                update["hf_token"] = SecretStr(key) if key else None
                update["hf_base_url"] = spec.base_url
            if spec.max_tokens:
                update["hf_max_new_tokens"] = spec.max_tokens
            per_model[model] = HuggingFaceProvider(settings.model_copy(update=update))
    else:
        from assistant.providers.local import LocalProvider

        shared = LocalProvider(settings)
    for provider in [shared] if shared is not None else per_model.values():
        provider.name = spec.name
    policy = generation.Policy.from_settings(
        settings, first_token_timeout=spec.timeout, retries=spec.retries
    )
    cap = spec.max_concurrency or settings.upstream_max_connections
    return Upstream(spec, per_model, shared, policy, cap, settings.assistant_retry_after)


class Registry:
    def __init__(self, catalogue: Catalogue, settings: Settings) -> None:
        self.catalogue = catalogue
        self.settings = settings
        self.default = catalogue.default
        self.created = now()
        self.upstreams: dict[str, Upstream] = {}
        for spec in catalogue.providers:
            ids = [m.id for m in catalogue.models if m.provider == spec.name]
            self.upstreams[spec.name] = build_upstream(spec, catalogue, settings, ids)
        # What each discovering upstream's model list offered last.
        self._discovered: dict[str, list[Listed]] = {}
        self.table: dict[str, Served] = self._build()
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    def from_settings(cls, settings: Settings) -> Registry:
        """Raises `CatalogueError` naming the bad entry when MODELS_FILE is wrong."""
        if settings.models_file is not None:
            return cls(from_file(settings.models_file), settings)
        local = settings.assistant_provider == "local"
        return cls(single_provider(settings, local_model_id(settings) if local else ""), settings)

    def _build(self) -> dict[str, Served]:
        """The catalogue's models in its order, then each upstream's discovered ones (an id
        listed or found earlier keeps its first owner)."""
        table = {
            m.id: Served(m.id, self.upstreams[m.provider], m.display_name or m.id, m.context_length)
            for m in self.catalogue.models
        }
        for name, listed in self._discovered.items():
            upstream = self.upstreams[name]
            if upstream.spec.allow_only_listed:
                continue
            for found in listed:
                if found.id not in table:
                    table[found.id] = Served(found.id, upstream, found.id, found.context_length)
        return table

    # --- routing ---------------------------------------------------------------------------

    def resolve(self, model: str | None) -> Served:
        served = self.table.get(model or self.default)
        if served is None:
            raise unknown_model(str(model), sorted(self.table))
        return served

    def default_model(self) -> Served:
        return self.table[self.default]

    def cards(self) -> list[ModelCard]:
        return [
            ModelCard(
                id=m.id,
                created=self.created,
                owned_by=m.upstream.name,
                provider=m.upstream.name,
                display_name=m.display_name,
                context_length=m.context_length,
                ready=m.upstream.ready(m.id),
                default=m.id == self.default,
            )
            for m in self.table.values()
        ]

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start every provider in its own task (the local model loads while remote ones
        already serve), and the background check of every openai-kind upstream."""
        for upstream in self.upstreams.values():
            for provider in upstream.providers():
                self._tasks.append(asyncio.create_task(start_provider(provider)))
            if upstream.spec.kind == "openai":
                self._tasks.append(asyncio.create_task(self._watch(upstream)))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for upstream in self.upstreams.values():
            for provider in upstream.providers():
                await provider.close()

    async def _watch(self, upstream: Upstream) -> None:
        provider = upstream.providers()[0]
        while True:
            if provider.ready:
                await self.refresh(upstream)
            # The check's period, product behaviour (MODELS_REFRESH_SECONDS); before the
            # provider has started, a short wait for it.
            await asyncio.sleep(self.settings.models_refresh_seconds if provider.ready else 0.05)

    async def refresh(self, upstream: Upstream) -> None:
        """Ask the upstream for its models: reachability, and with discovery, the table."""
        provider = upstream.providers()[0]
        assert isinstance(provider, OpenAIProvider)
        try:
            listed = await provider.list_models(self.settings.models_check_timeout)
        except AssistantError as exc:
            log.warning("%s: model list failed: %s (%s)", upstream.name, exc.message, exc.detail)
            upstream.note(False)
            return
        upstream.note(True)
        if not upstream.spec.discover or listed is None:
            return
        upstream.offered = frozenset(m.id for m in listed)
        self._discovered[upstream.name] = listed
        table = self._build()
        if table.keys() != self.table.keys():
            log.info("%s: models now %s", upstream.name, sorted(table))
        self.table = table


async def start_provider(provider: Provider) -> None:
    """Runs beside the server so /health/live answers while a model loads."""
    try:
        await provider.start()
    except Exception as exc:
        provider.failure = f"{type(exc).__name__}: {exc}"
        log.exception("the %s provider failed to start", provider.name)
    else:
        log.info("the %s provider is ready", provider.name)
