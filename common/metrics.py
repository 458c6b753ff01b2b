"""Prometheus metrics both services share, and the middleware that counts requests.

Every app makes its own `CollectorRegistry` (in `create_app`), never the module-level default:
tests run several apps in one process, and metrics made at import time would collide.

With `PROMETHEUS_MULTIPROC_DIR` set (several worker processes, as under gunicorn),
prometheus-client keeps each process's values in files there and `GET /metrics` adds up
every process's files, whichever worker answers. The directory must be empty when the
service starts (stale files of an earlier run would be counted too). Unset: values live in
the process, which answers for itself.

`GET /metrics` is answered by the middleware on each service's own port, outside the API's
routes (and its OpenAPI document); nginx proxies only conversation's `/api/` and the
tutorials' paths, so it never reaches the public.
"""

from __future__ import annotations

import os
import re
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.metrics import Histogram
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.logs import request_id

NAMESPACE = "chatstack"
METRICS_PATH = "/metrics"
# The route label of a request no route matched: one value, whatever the path.
UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Seconds, for latencies from a Redis round trip (~0.1 ms) to a model's first token (~10 s).
LATENCY_BUCKETS = (
    *(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5),
    *(1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
# A request id longer than nginx lets through is cut: a direct caller cannot bloat each line.
MAX_REQUEST_ID = 128
# Error codes are our own snake_case words; anything else in a body is not used as a label.
_CODE = re.compile(r"[a-z][a-z0-9_]{0,47}")


def multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class ServiceMetrics:
    """What both services measure: requests, errors, and their upstream's latency."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.requests = Counter(
            "http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.errors = Counter(
            "errors",
            "Errors by the code clients are given: each HTTP error answer (the code in its "
            "JSON body), and errors sent within a 200 answer: a reply ended by an error event, "
            "an error frame on a WebSocket.",
            ["code"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.upstream_latency = Histogram(
            "upstream_latency_seconds",
            "Seconds from a request to the next hop until its answer starts: conversation's "
            "to assistant (response headers), assistant's to its model provider (the first "
            "token, retries included).",
            ["upstream"],
            namespace=NAMESPACE,
            registry=self.registry,
            buckets=LATENCY_BUCKETS,
        )
        # Label children are looked up once per label set, not per request.
        self._requests: dict[tuple[str, str, int], Any] = {}
        self._errors: dict[str, Any] = {}
        self._exposed = self.registry
        if multiprocess():
            self._exposed = CollectorRegistry()
            MultiProcessCollector(self._exposed)  # type: ignore[no-untyped-call]

    def count_request(self, method: str, route: str, status: int) -> None:
        key = (method, route, status)
        child = self._requests.get(key)
        if child is None:
            child = self._requests[key] = self.requests.labels(method, route, str(status))
        child.inc()

    def count_error(self, code: str) -> None:
        child = self._errors.get(code)
        if child is None:
            child = self._errors[code] = self.errors.labels(code)
        child.inc()

    def exposition(self) -> bytes:
        return generate_latest(self._exposed)


def error_code(body: bytes, status: int) -> str:
    """The code an error answer gives clients: conversation's `{"detail","code"}`, or
    OpenAI's `{"error": {"code","type"}}` from assistant; `http_<status>` when it has none."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        inner = data.get("error")
        for source in (data, inner if isinstance(inner, dict) else {}):
            for field in ("code", "type"):
                value = source.get(field)
                if isinstance(value, str) and _CODE.fullmatch(value):
                    return value
    return f"http_{status}"


def route_template(scope: Scope) -> str:
    """The matched route's path template, router prefixes included: `/v1/chat/completions`,
    `/api/sessions/{session_id}`; `UNMATCHED` for a path no route matched.

    The route in the scope knows only its own path, without the prefix its router was
    included with; the prefix is the request path's part before that many segments (each
    parameter matches one segment: none of our routes takes a `:path` parameter).
    """
    route = scope.get("route")
    template = getattr(route, "path", None)
    if not isinstance(template, str):
        return UNMATCHED
    path: str = scope["path"]
    return path.rsplit("/", template.count("/"))[0] + template


def _request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            raw: bytes = value[:MAX_REQUEST_ID]
            return raw.decode("latin-1")
    return None


class Observe:
    """Counts every HTTP request by route template and status, counts error answers by
    code, serves `GET /metrics`, and sets the request id for the request's log lines.

    Pure ASGI (no BaseHTTPMiddleware): a streamed answer passes through untouched; each
    message sent costs one plain function call, and only an error answer's body is read.
    """

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self.app(scope, receive, send)
            return
        reset = request_id.set(_request_id(scope))
        try:
            if kind != "http":
                await self.app(scope, receive, send)
            elif scope["path"] == METRICS_PATH and scope["method"] == "GET":
                await self._serve_metrics(send)
            else:
                await self._observed(scope, receive, send)
        finally:
            request_id.reset(reset)

    async def _observed(self, scope: Scope, receive: Receive, send: Send) -> None:
        status = 0  # no answer started yet
        failed = False

        # Not a coroutine: it hands back the next send's awaitable, so each message (every
        # write of a stream) costs a call and a comparison, no extra coroutine.
        def counted(message: Message) -> Any:
            nonlocal status, failed
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
                failed = status >= 400
            elif failed and kind == "http.response.body":
                failed = False  # the code is in the first part of the body
                self.metrics.count_error(error_code(message.get("body", b""), status))
            return send(message)

        try:
            await self.app(scope, receive, counted)
        except Exception:
            if status == 0:
                # The server's error handler, outside this middleware, answers 500.
                status = 500
                self.metrics.count_error("internal_error")
            raise
        finally:
            if status == 0:
                status = 499  # the client left before any answer (nginx's word for it)
            method = scope["method"]
            route = route_template(scope)
            self.metrics.count_request(method if method in METHODS else "OTHER", route, status)

    async def _serve_metrics(self, send: Send) -> None:
        body = self.metrics.exposition()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", CONTENT_TYPE_LATEST.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
