"""Both services' logs: one line per record on stderr, JSON or text, with the request id.

The request id is the `X-Request-ID` header nginx sets on every request it proxies (its own
`$request_id` unless the client sent a plausible one), and conversation passes it on to
assistant, so one id finds a request's lines in nginx's access log and in both services.
`common.metrics.Observe` puts it in `request_id` for the request's whole handling; a task
started by a request (a reply's generation) inherits it, as every asyncio task copies the
context it was created in.

Nothing here logs headers or bodies; `redact` still blanks credentials in every line, since
uvicorn's own lines quote request paths, and a WebSocket path may carry `?token=`.
"""

from __future__ import annotations

import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Annotated, Literal, TextIO

import orjson
from pydantic import BeforeValidator

LogFormat = Literal["json", "text"]
# Settings accept any case (LOG_LEVEL=debug).
LogLevel = Annotated[
    Literal["DEBUG", "INFO", "WARNING", "ERROR"],
    BeforeValidator(lambda value: value.upper() if isinstance(value, str) else value),
]

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

# The servers configure these themselves (their own handlers, no propagation); ours replace
# them. gunicorn's: in its workers, where the app is made.
SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "gunicorn.error", "gunicorn.access")

_SECRETS = (
    # a credential in a query string or a form: ?token=..., &api_key=...
    (
        re.compile(r"(?i)\b((?:access_|refresh_)?token|api_key|key|password)=[^&\s\"']+"),
        r"\1=[redacted]",
    ),
    # an Authorization header's value, should one ever be quoted
    (re.compile(r"(?i)\b(bearer\s+)[^\s\"',]+"), r"\1[redacted]"),
)


def redact(text: str) -> str:
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class JsonFormatter(logging.Formatter):
    """`{"time","level","logger","message","request_id"[,"exception"]}`, one per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            "request_id": request_id.get(),
        }
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry).decode()


class TextFormatter(logging.Formatter):
    """For a person at a terminal: `time LEVEL logger [request id] message`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.request_id = request_id.get() or "-"
        return redact(super().format(record))


class _OurHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler `configure` installs, so a second app in one process replaces it."""


def configure(log_format: LogFormat, level: str = "INFO", stream: TextIO | None = None) -> None:
    """Send every logger's records, the server's included, to `stream` (stderr) in
    `log_format`."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _OurHandler)]:
        root.removeHandler(handler)
    handler = _OurHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in SERVER_LOGGERS:
        server_logger = logging.getLogger(name)
        # Without handlers and not propagating, the server turned it off (--no-access-log).
        if server_logger.handlers:
            server_logger.handlers.clear()
            server_logger.propagate = True
