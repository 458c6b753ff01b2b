"""Every failure as an answer: OpenAI's error body with a fitting HTTP status.

Providers translate their library's exceptions into `AssistantError` through the
constructors below, so the API layer and the retry logic see one kind of failure whatever
the upstream was. `retryable` marks failures worth another attempt before the first token.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping

from common.protocol import ErrorDetail, ErrorResponse


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
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.type = type_
        self.param = param
        self.retry_after = retry_after
        self.retryable = retryable

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


# --- the caller's request ----------------------------------------------------------------


def invalid_request(message: str, param: str | None = None) -> AssistantError:
    return AssistantError(
        400, "invalid_request", message, type_="invalid_request_error", param=param
    )


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


def internal(message: str) -> AssistantError:
    return AssistantError(500, "internal_error", message, type_="server_error")


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
    suffix = f": {detail}" if detail else ""
    return AssistantError(
        429,
        "upstream_rate_limited",
        f"The {provider} provider is rate limiting requests{suffix}",
        type_="rate_limit_error",
        retry_after=retry_after,
    )


def upstream_unreachable(provider: str, detail: str) -> AssistantError:
    return AssistantError(
        503,
        "upstream_unavailable",
        f"The {provider} provider cannot be reached: {detail}",
        type_="service_unavailable",
        retryable=True,
    )


def upstream_timeout(provider: str, phase: str, seconds: float) -> AssistantError:
    return AssistantError(
        504,
        "upstream_timeout",
        f"The {provider} provider was too slow: no {phase} within {seconds:g}s.",
        type_="timeout_error",
        retryable=True,
    )


def upstream_failed(provider: str, detail: str, *, retryable: bool = True) -> AssistantError:
    return AssistantError(
        502,
        "upstream_error",
        f"The {provider} provider failed: {detail}",
        type_="upstream_error",
        retryable=retryable,
    )


def upstream_rejected(provider: str, status: int, detail: str) -> AssistantError:
    return AssistantError(
        400,
        "upstream_rejected_request",
        f"The {provider} provider rejected the request (HTTP {status}): {detail}",
        type_="invalid_request_error",
    )


def from_upstream_status(
    provider: str, status: int, detail: str, retry_after: int
) -> AssistantError:
    """Map an upstream HTTP error status to ours (see issue 3's failure table)."""
    if status in (401, 403):
        return upstream_auth(provider, status)
    if status == 429:
        return upstream_rate_limited(provider, retry_after, detail)
    if status in (400, 413, 422):
        return upstream_rejected(provider, status, detail)
    if status == 503:
        return upstream_unreachable(provider, f"HTTP 503: {detail}")
    if status == 504:
        return AssistantError(
            504,
            "upstream_timeout",
            f"The {provider} provider timed out (HTTP 504): {detail}",
            type_="timeout_error",
            retryable=True,
        )
    return upstream_failed(provider, f"HTTP {status}: {detail}", retryable=status >= 500)


def parse_retry_after(headers: Mapping[str, str], default: int) -> int:
    """Seconds to wait, from `retry-after-ms`, `Retry-After` (seconds or HTTP date)."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(1, math.ceil(float(millis) / 1000))
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return default
    try:
        return max(1, math.ceil(float(value)))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    return max(1, math.ceil(when.timestamp() - time.time()))
