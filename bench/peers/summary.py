"""The `peers` section of the results: each figure of the issue with the peers beside ours,
read from the scenarios' own figures (which stay the one record of what was measured)."""

from __future__ import annotations

from typing import Any

from bench.scenarios.first_token import compared_levels

# Ours and theirs, in the order the tables and plots show them: one hop (the floor, assistant,
# LiteLLM), then the whole job (conversation and assistant, the stack, Open WebUI).
ROUTES = ("floor", "assistant", "litellm", "conversation-sse", "nginx-sse", "open-webui")


def _pick(values: dict[str, Any]) -> dict[str, Any]:
    return {route: values[route] for route in ROUTES if route in values}


def side_by_side(scenarios: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if first := scenarios.get("1_first_token"):
        found["ttft_added_ms"] = {
            level: {
                route: {
                    "p50": figures["added_p50_ms"][route],
                    "p99": figures["added_p99_ms"][route],
                }
                for route in _pick(figures["added_p50_ms"])
            }
            for level, figures in compared_levels(first).items()
        }
    if gaps := scenarios.get("2_token_gaps"):
        found["gap_added_ms"] = {
            route: {
                "p50": gaps["added_excess_p50_ms"][route],
                "p99": gaps["added_excess_p99_ms"][route],
            }
            for route in _pick(gaps["added_excess_p50_ms"])
        }
    if throughput := scenarios.get("3_throughput"):
        found["tokens_per_s"] = {
            route: figures["median_tokens_per_s"]
            for route, figures in _pick(throughput["routes"]).items()
        }
        found["tokens_per_s_ratio_to_direct"] = _pick(throughput["ratio_to_direct"])
    if (concurrency := scenarios.get("4_concurrency")) and "ramps" in concurrency:
        found["memory"] = _pick(concurrency["ramps"])
    if (sustained := scenarios.get("5_sustained")) and "per_cpu" in sustained:
        found["requests_per_cpu_second"] = _pick(sustained["per_cpu"])
    return found
