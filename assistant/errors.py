"""Every failure as an answer: OpenAI's error body with a fitting HTTP status.

Providers translate their library's exceptions into `AssistantError` through the
constructors below, so the API layer and the retry logic see one kind of failure whatever
the upstream was. `retryable` marks failures worth another attempt before the first token.

A caller sees only a stable message and code written here: what the upstream said, its
address and exception text may name internal hosts, so they travel in `detail`, which is
logged (`log_failure`) and never sent.
"""

from __future__ import annotations

import email.utils
import logging
import math
import time
from collections.abc import Mapping

from common.protocol import ErrorDetail, ErrorResponse

log = logging.getLogger(__name__)


class AssistantError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        type_: str,
        param: str | None = None,
        retry_after: int | None = None,
        retryable: bool = False,
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.type = type_
        self.param = param
        self.retry_after = retry_after
        self.retryable = retryable
        # For the operator's log only: it may hold upstream addresses and exception text.
        self.detail = detail

    def body(self) -> ErrorResponse:
        return ErrorResponse(
            error=ErrorDetail(
                message=self.message, type=self.type, code=self.code, param=self.param
            )
        )

    def json(self) -> bytes:
        return self.body().model_dump_json(exclude_none=True).encode()

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}


def log_failure(error: AssistantError) -> None:
    """Log what the caller is not told: the upstream's own words or the exception."""
    if error.detail:
        log.warning("%s (%s): %s", error.code, error.status, error.detail)


# --- the caller's request ----------------------------------------------------------------


def invalid_request(message: str, param: str | None = None) -> AssistantError:
    return AssistantError(
        400, "invalid_request", message, type_="invalid_request_error", param=param
    )


HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 415: "unsupported_media_type"}


def http_error(status: int, message: str) -> AssistantError:
    """A refusal by the HTTP layer itself, with its own words (they name no input)."""
    code = HTTP_CODES.get(status, "invalid_request")
    return AssistantError(status, code, message, type_="invalid_request_error")


def limit_exceeded(status: int, code: str, message: str, param: str) -> AssistantError:
    return AssistantError(status, code, message, type_="invalid_request_error", param=param)


def unauthorized() -> AssistantError:
    return AssistantError(
        401,
        "invalid_api_key",
        "Missing or wrong API key: send `Authorization: Bearer <ASSISTANT_API_KEY>`.",
        type_="authentication_error",
    )


# --- this service --------------------------------------------------------------------------


def not_ready(provider: str, retry_after: int) -> AssistantError:
    return AssistantError(
        503,
        "not_ready",
        f"The {provider} provider is still starting (loading its model); try again shortly.",
        type_="service_unavailable",
        retry_after=retry_after,
    )


def overloaded(queue_size: int, retry_after: int) -> AssistantError:
    return AssistantError(
        503,
        "overloaded",
        f"The local model is busy and its queue is full (LOCAL_QUEUE_SIZE={queue_size}); "
        "try again shortly.",
        type_="service_unavailable",
        retry_after=retry_after,
    )


def provider_busy(provider: str, cap: int, retry_after: int) -> AssistantError:
    return AssistantError(
        503,
        "provider_busy",
        f"The {provider} provider is serving as many requests as it may at once "
        f"(max_concurrency {cap}); try again shortly.",
        type_="service_unavailable",
        retry_after=retry_after,
    )


MAX_LISTED_IDS = 50


def unknown_model(model: str, valid: list[str]) -> AssistantError:
    listed = ", ".join(valid[:MAX_LISTED_IDS])
    if len(valid) > MAX_LISTED_IDS:
        listed += f" and {len(valid) - MAX_LISTED_IDS} more (GET /v1/models)"
    # repr: the caller's text, quoted and escaped, so no control character or lone
    # surrogate reaches the answer raw.
    return AssistantError(
        400,
        "model_not_found",
        f"The model {model[:200]!r} is not served here; valid models: {listed}.",
        type_="invalid_request_error",
        param="model",
    )


def internal(message: str, detail: str | None = None) -> AssistantError:
    return AssistantError(500, "internal_error", message, type_="server_error", detail=detail)


# --- the upstream model provider ---------------------------------------------------------------


def upstream_auth(provider: str, status: int) -> AssistantError:
    return AssistantError(
        502,
        "upstream_auth_failed",
        f"The {provider} provider rejected the assistant's credentials (HTTP {status}); "
        "check the provider's API key in the assistant's settings.",
        type_="upstream_error",
    )


def upstream_rate_limited(provider: str, retry_after: int, detail: str = "") -> AssistantError:
    return AssistantError(
        429,
        "upstream_rate_limited",
        f"The {provider} provider is rate limiting requests; try again after Retry-After.",
        type_="rate_limit_error",
        retry_after=retry_after,
        detail=detail or None,
    )


def upstream_unreachable(provider: str, detail: str) -> AssistantError:
    return AssistantError(
        503,
        "upstream_unavailable",
        f"The {provider} provider cannot be reached.",
        type_="service_unavailable",
        retryable=True,
        detail=detail,
    )


def upstream_timeout(provider: str, phase: str, seconds: float) -> AssistantError:
    return _timeout(provider, f"was too slow: no {phase} within {seconds:g}s")


def _timeout(provider: str, what: str, detail: str | None = None) -> AssistantError:
    return AssistantError(
        504,
        "upstream_timeout",
        f"The {provider} provider {what}.",
        type_="timeout_error",
        retryable=True,
        detail=detail,
    )


def upstream_failed(
    provider: str, reason: str, detail: str | None = None, *, retryable: bool = True
) -> AssistantError:
    """`reason` is one of our own fixed phrases; `detail` is what the upstream said."""
    return AssistantError(
        502,
        "upstream_error",
        f"The {provider} provider failed: {reason}.",
        type_="upstream_error",
        retryable=retryable,
        detail=detail,
    )


def upstream_rejected(provider: str, status: int, detail: str) -> AssistantError:
    return AssistantError(
        400,
        "upstream_rejected_request",
        f"The {provider} provider rejected the request (HTTP {status}).",
        type_="invalid_request_error",
        detail=detail,
    )


def from_upstream_status(
    provider: str, status: int, detail: str, retry_after: int | None, default_retry_after: int
) -> AssistantError:
    """Map an upstream HTTP error status to ours.

    `retry_after` is what the upstream asked for (None when it said nothing): a 429 that
    names its wait is worth another attempt once the wait is over, if the retry policy
    allows a wait that long (`assistant.generation`); without one, the caller is told to
    come back after `default_retry_after`.
    """
    detail = f"HTTP {status}: {detail}"
    if status in (401, 403):
        error = upstream_auth(provider, status)
        error.detail = detail
        return error
    if status == 429:
        error = upstream_rate_limited(provider, retry_after or default_retry_after, detail)
        error.retryable = retry_after is not None
        return error
    if status in (400, 413, 422):
        return upstream_rejected(provider, status, detail)
    if status == 503:
        error = upstream_unreachable(provider, detail)
    elif status == 504:
        error = _timeout(provider, "timed out (HTTP 504)", detail)
    else:
        error = upstream_failed(provider, f"HTTP {status}", detail, retryable=status >= 500)
    error.retry_after = retry_after
    return error


def upstream_message(body: object, fallback: str) -> str:
    """The upstream's own words from an error body: OpenAI's `{"error": {"message"}}`, a
    bare `{"message"}`, `{"error": "..."}` (TGI) or a plain string; else `fallback`.

    The one reader of upstream error bodies, for every provider: what it returns is only
    logged (see the module docstring), capped so a proxy's error page stays readable.
    """
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            inner = inner.get("message")
        if isinstance(inner, str) and inner:
            return inner[:300]
    if isinstance(body, str) and body.strip():
        return body.strip()[:300]
    return fallback


def parse_retry_after(headers: Mapping[str, str]) -> int | None:
    """Seconds the upstream asks us to wait, from `retry-after-ms` or `Retry-After`
    (seconds or an HTTP date); None when it says nothing usable."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(1, math.ceil(float(millis) / 1000))
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(1, math.ceil(float(value)))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(1, math.ceil(when.timestamp() - time.time()))
