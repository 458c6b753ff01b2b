"""What every model provider offers the API: a stream of text deltas ending with a `Finish`.

A provider turns its library's failures into `AssistantError` (see `assistant.errors`), so the
retry, timeout and streaming code above it never looks at provider-specific exceptions.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, TypeAlias

from common.protocol import ChatMessage, FinishReason, Usage


@dataclass(frozen=True, slots=True)
class GenerationParams:
    # The catalogue's model id, for providers that serve several (None: the provider's own).
    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    # Who asked (OpenAI's `user`: an opaque id of the end user), for fair sharing of a model
    # this process runs; never sent upstream.
    user: str | None = None


@dataclass(frozen=True, slots=True)
class Finish:
    """The last item of a stream: why it ended and, when the provider says, token usage."""

    reason: FinishReason
    usage: Usage | None = None


@dataclass(frozen=True, slots=True)
class Queued:
    """Before the first token: the request waits for the model, `ahead` others before it."""

    ahead: int


# Text deltas come as a list: those that arrived together (one read from the upstream) go on
# together, in one socket write; plain `str`s, so a token costs nothing beyond its text.
StreamItem: TypeAlias = list[str] | Finish | Queued


class TokenStream(Protocol):
    def __aiter__(self) -> AsyncIterator[StreamItem]: ...
    async def __anext__(self) -> StreamItem: ...
    async def aclose(self) -> None:
        """Stop generating and release the upstream request (idempotent)."""


class Provider(ABC):
    name: str

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id
        self.ready = False
        self.failure: str | None = None

    async def start(self) -> None:
        """Prepare what generation needs (clients, model weights); then the service is ready."""
        self.ready = True

    async def close(self) -> None:  # noqa: B027 - an optional hook, not every provider holds resources
        """Release clients and models at shutdown."""

    def models(self) -> list[str]:
        return [self.model_id]

    def stats(self) -> dict[str, int | bool]:
        """Counters shown by /health, for operators and tests."""
        return {}

    @abstractmethod
    async def open(self, messages: list[ChatMessage], params: GenerationParams) -> TokenStream:
        """Admit a request and return its token stream.

        Awaiting this only waits for admission (the local model's queue); connecting and
        generating happen while the stream is read, under the first-token timeout.
        """


def token_budget(requested: int | None, limit: int) -> int:
    """Tokens to ask the model for: the caller's number, never more than the setting's."""
    return min(requested or limit, limit)


def message_dicts(messages: list[ChatMessage]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in messages]


FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
}


def finish_reason(value: str) -> FinishReason:
    # Tool calls and other reasons this product does not use still end the answer normally.
    return FINISH_REASONS.get(value, "stop")


def transport_detail(exc: BaseException) -> str:
    cause = exc.__cause__ or exc
    text = str(cause) or type(cause).__name__
    return text[:300]
