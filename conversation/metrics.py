"""conversation's own metrics: its replies, as their clients see them, and Redis's latency.

One `reply_ended` call per reply, besides the active gauge's inc and dec; nothing per token
(the generation counts its deltas with an integer add, for a model that reports no usage).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from common.metrics import LATENCY_BUCKETS, NAMESPACE, ServiceMetrics

# Seconds a reply may take, from a one-word answer to a long essay at a slow model's pace.
REPLY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)


class ConversationMetrics(ServiceMetrics):
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        self.first_token = Histogram(
            "time_to_first_token_seconds",
            "Seconds from a reply's start (the turn stored) to its first text from assistant.",
            namespace=NAMESPACE,
            registry=self.registry,
            buckets=LATENCY_BUCKETS,
        )
        self.reply_duration = Histogram(
            "reply_duration_seconds",
            "Seconds from a reply's start to its end (stored), by how it ended: complete, "
            "length, cancelled, error, interrupted.",
            ["status"],
            namespace=NAMESPACE,
            registry=self.registry,
            buckets=REPLY_BUCKETS,
        )
        self.active = Gauge(
            "active_generations",
            "Replies being written now (all processes together in multiprocess mode).",
            namespace=NAMESPACE,
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.tokens = Counter(
            "tokens_generated",
            "Tokens of the replies written, by the model assistant named (its usage count; "
            "the number of text deltas when the model reports none).",
            ["model"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.redis_latency = Histogram(
            "redis_latency_seconds",
            "Seconds per Redis round trip, by command, script (begin_turn, flush, ...) or "
            "pipeline (its commands); a blocking stream read (XREAD) includes its wait.",
            ["command"],
            namespace=NAMESPACE,
            registry=self.registry,
            buckets=LATENCY_BUCKETS,
        )
        self.titles = Counter(
            "titles",
            "Chat titles asked of a model after a first reply, by outcome: titled, kept (the "
            "chat was renamed or deleted meanwhile), failed (an error, a timeout, no text).",
            ["outcome"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.assistant_latency = self.upstream_latency.labels("assistant")
        self._durations: dict[str, Any] = {}
        self._tokens: dict[str, Any] = {}

    def reply_ended(
        self,
        status: str,
        duration: float,
        first_token: float | None,
        model: str,
        tokens: int,
        error_code: str | None,
    ) -> None:
        if first_token is not None:
            self.first_token.observe(first_token)
        durations = self._durations.get(status)
        if durations is None:
            durations = self._durations[status] = self.reply_duration.labels(status)
        durations.observe(duration)
        if tokens:
            counter = self._tokens.get(model)
            if counter is None:
                counter = self._tokens[model] = self.tokens.labels(model)
            counter.inc(tokens)
        if error_code is not None:
            self.count_error(error_code)
