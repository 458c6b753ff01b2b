"""One configured provider at run time: its provider object(s), retry policy, concurrency
cap and whether it is ready.

Nothing is shared between two upstreams: each has its own client (so connection pool and
timeouts), policy, cap and state, so one slow or failing provider never delays another's
requests. Reachability of a remote provider is learnt from its requests and from a check in
the background (`assistant.registry`), never by a request waiting for a check.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from assistant import generation
from assistant.catalogue import ProviderSpec
from assistant.errors import AssistantError, provider_busy
from assistant.providers.base import GenerationParams, Provider, StreamItem, TokenStream
from common.protocol import ChatMessage

log = logging.getLogger(__name__)

# Failures that say the upstream cannot serve now (not that this request was wrong).
UNREACHABLE_CODES = frozenset(
    {"upstream_unavailable", "upstream_timeout", "upstream_auth_failed", "upstream_error"}
)


class Lease:
    """A place under an upstream's concurrency cap, given back once."""

    __slots__ = ("_upstream",)

    def __init__(self, upstream: Upstream) -> None:
        self._upstream: Upstream | None = upstream
        upstream.active += 1

    def release(self) -> None:
        if self._upstream is not None:
            self._upstream.active -= 1
            self._upstream = None


class Leased:
    """A token stream that gives its upstream's place back when it is closed."""

    __slots__ = ("_lease", "_stream")

    def __init__(self, stream: TokenStream, lease: Lease) -> None:
        self._stream = stream
        self._lease = lease

    def __aiter__(self) -> AsyncIterator[StreamItem]:
        return self

    async def __anext__(self) -> StreamItem:
        return await self._stream.__anext__()

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            self._lease.release()


class Upstream:
    def __init__(
        self,
        spec: ProviderSpec,
        providers: dict[str, Provider],
        shared: Provider | None,
        policy: generation.Policy,
        cap: int,
        retry_after: int,
    ) -> None:
        self.spec = spec
        self.name = spec.name
        # One provider object for every model (openai, local), or one per model (huggingface,
        # whose client is per model).
        self._shared = shared
        self._per_model = providers
        self.policy = policy
        self.cap = cap
        self.retry_after = retry_after
        self.active = 0
        # Remote only: the outcome of the last request or check (None: nothing known yet).
        self.reachable: bool | None = None
        # With discovery: the ids the upstream's last model list offered.
        self.offered: frozenset[str] | None = None

    @property
    def remote(self) -> bool:
        return self.spec.kind != "local"

    def providers(self) -> list[Provider]:
        return [self._shared] if self._shared is not None else list(self._per_model.values())

    def provider_for(self, model: str) -> Provider:
        if self._shared is not None:
            return self._shared
        return self._per_model[model]

    def started(self, model: str) -> bool:
        return self.provider_for(model).ready

    def ready(self, model: str) -> bool:
        """Local: its model is loaded. Remote: started, and the last request or check got an
        answer (and, with discovery, the upstream still offers the model)."""
        if not self.started(model):
            return False
        if not self.remote:
            return True
        if self.spec.kind == "openai":
            offered = self.offered is None or model in self.offered
            return self.reachable is True and offered
        return self.reachable is not False  # no check but requests: unknown counts as ready

    def note(self, reachable: bool) -> None:
        if self.remote and self.reachable != reachable:
            log.info("%s: %s", self.name, "reachable" if reachable else "unreachable")
        self.reachable = reachable

    def admit(self) -> Lease:
        if self.active >= self.cap:
            raise provider_busy(self.name, self.cap, self.retry_after)
        return Lease(self)

    async def start(
        self, model: str, messages: list[ChatMessage], params: GenerationParams
    ) -> generation.Started:
        """A place under the cap, then the first token under this upstream's policy."""
        provider = self.provider_for(model)
        lease = self.admit()
        try:
            started = await generation.start(provider, messages, params, self.policy)
        except AssistantError as exc:
            lease.release()
            if exc.code in UNREACHABLE_CODES:
                self.note(False)
            raise
        except BaseException:
            lease.release()
            raise
        self.note(True)
        started.stream = Leased(started.stream, lease)
        return started
