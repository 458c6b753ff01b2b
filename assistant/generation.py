"""One request's generation: admission, retries before the first token, timeouts after it.

`start` returns only once the first token (or a failure) is known, so the API can still
answer a failure with its HTTP status; `follow` then yields the rest of the stream under
the idle timeout. Nothing here knows which provider it drives.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from assistant.config import Settings
from assistant.errors import AssistantError, internal, upstream_failed, upstream_timeout
from assistant.providers.base import Finish, GenerationParams, Provider, StreamItem, TokenStream
from common.protocol import ChatMessage

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Policy:
    first_token_timeout: float
    idle_timeout: float
    attempts: int
    backoff: float
    # The longest upstream Retry-After a retry waits out; beyond it the caller gets the error.
    max_wait: float = 0.0

    @classmethod
    def from_settings(
        cls, settings: Settings, *, first_token_timeout: float | None, retries: int | None
    ) -> Policy:
        """The service-wide policy, with a provider's own timeout and retries when it has any."""
        return cls(
            first_token_timeout=first_token_timeout or settings.upstream_first_token_timeout,
            idle_timeout=settings.upstream_idle_timeout,
            attempts=settings.upstream_retry_attempts if retries is None else retries + 1,
            backoff=settings.upstream_retry_backoff,
            max_wait=settings.upstream_retry_max_wait,
        )


@dataclass(slots=True)
class Started:
    first: StreamItem
    stream: TokenStream


def unexpected(provider: Provider, exc: Exception) -> AssistantError:
    log.exception("the %s provider raised an unexpected error", provider.name, exc_info=exc)
    return internal(
        f"The {provider.name} provider failed unexpectedly.", f"{type(exc).__name__}: {exc}"
    )


async def start(
    provider: Provider, messages: list[ChatMessage], params: GenerationParams, policy: Policy
) -> Started:
    """Get the first item, retrying retryable failures with exponential backoff, waiting at
    least what the upstream's Retry-After asks (up to the policy's `max_wait`)."""
    attempt = 1
    while True:
        stream = await provider.open(messages, params)
        try:
            async with asyncio.timeout(policy.first_token_timeout):
                first = await anext(stream)
        except StopAsyncIteration:
            error = upstream_failed(provider.name, "the stream ended before any token")
        except TimeoutError:
            error = upstream_timeout(provider.name, "first token", policy.first_token_timeout)
        except AssistantError as exc:
            error = exc
        except Exception as exc:
            error = unexpected(provider, exc)
        except BaseException:
            await stream.aclose()  # the caller went away: stop the upstream request too
            raise
        else:
            return Started(first, stream)
        await stream.aclose()
        asked = error.retry_after or 0
        if not error.retryable or attempt >= policy.attempts or asked > policy.max_wait:
            if attempt > 1:
                error.message = f"{error.message.rstrip('.')} (after {attempt} attempts)"
            raise error
        delay = max(policy.backoff * 2 ** (attempt - 1), asked)
        log.warning(
            "%s: attempt %d/%d failed (%s%s); retrying in %.2fs",
            provider.name,
            attempt,
            policy.attempts,
            error.message,
            f" {error.detail}" if error.detail else "",
            delay,
        )
        await asyncio.sleep(delay)  # backoff between upstream attempts, product behaviour
        attempt += 1


async def follow(provider: Provider, started: Started, policy: Policy) -> AsyncIterator[StreamItem]:
    """Yield the first item and the rest; a failure after the first token is raised here.

    The idle timeout covers only the wait for the upstream's next item, never the caller's
    handling of one at `yield`. It is one timeout context for the whole stream, re-armed
    per token: entering a new `asyncio.timeout()` per token costs more than the token's
    own handling. The context belongs to the task that iterates this generator, which is
    the same task throughout (the response's, or `collect`'s caller).
    """
    stream = started.stream
    idle = policy.idle_timeout
    loop = asyncio.get_running_loop()
    try:
        yield started.first
        try:
            async with asyncio.timeout(None) as waiting:
                while True:
                    waiting.reschedule(loop.time() + idle)
                    try:
                        item = await anext(stream)
                    except StopAsyncIteration:
                        return
                    except (AssistantError, TimeoutError):
                        raise
                    except Exception as exc:
                        raise unexpected(provider, exc) from exc
                    # Disarmed while suspended at `yield`: firing there would cancel the
                    # caller's own work (a socket write) instead of the upstream read.
                    waiting.reschedule(None)
                    yield item
        except TimeoutError:
            raise upstream_timeout(provider.name, "token", idle) from None
    finally:
        await stream.aclose()


async def collect(provider: Provider, started: Started, policy: Policy) -> tuple[str, Finish]:
    """The whole answer for a non-streaming request."""
    parts: list[str] = []
    finish: Finish | None = None
    async for item in follow(provider, started, policy):
        if isinstance(item, list):
            parts.extend(item)
        else:
            finish = item
    if finish is None:
        raise upstream_failed(provider.name, "the stream ended without a finish reason")
    return "".join(parts), finish
