"""Scenario 10: what routing by `model` costs: scenario 1's time to first token through
assistant serving one model, and through assistant serving a catalogue of 20.

Two fresh assistant processes beside the stack, both in front of the same fake model: one
with the single-provider settings (a catalogue of one), one with a MODELS_FILE of 20
models over 5 OpenAI-compatible providers (each its own client and pool; the model asked
for is one of them). The same short streamed reply as scenario 1 (16 tokens, no delay), one
chat at a time; the direct route, assistant with 1 and with 20 take turns round by round,
each round starting with the next, so a change in the machine's load hits each alike. The
target is the ratio of the two assistants' p50 time to first token.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

from bench.clients import Turn
from bench.context import Bench
from bench.report import Outcome, at_most
from bench.routes import OpenAIRoute, run_batch
from bench.stack import start_assistant_service
from bench.stats import ms, summary
from tests.support.servers import Server, running

PROVIDERS = 5
MODELS_PER_PROVIDER = 4
ASKED = "fake-model"  # what the bench's client asks for: one of the 20


def catalogue(upstream: Server) -> str:
    lines = [f'default = "{ASKED}"']
    for p in range(PROVIDERS):
        lines += [
            "[[providers]]",
            f'name = "upstream-{p}"',
            'kind = "openai"',
            f'base_url = "{upstream.url}/v1"',
        ]
    for p in range(PROVIDERS):
        for m in range(MODELS_PER_PROVIDER):
            model = ASKED if (p, m) == (0, 0) else f"model-{p}-{m}"
            lines += ["[[models]]", f'id = "{model}"', f'provider = "upstream-{p}"']
    return "\n".join(lines) + "\n"


def describe(turns: list[Turn]) -> dict[str, object]:
    good = [t for t in turns if t.ok]
    return {
        "ttft_ms": summary([ms(t.ttft) for t in good]),
        "errors": len(turns) - len(good),
        "first_error": next((t.error for t in turns if not t.ok), None),
    }


async def run(bench: Bench) -> Outcome:
    upstream = bench.stack.upstream
    folder = Path(tempfile.mkdtemp(prefix="bench-routing-"))
    models_file = folder / "models.toml"
    models_file.write_text(catalogue(upstream))
    scale = bench.scale
    found: dict[str, list[Turn]] = {}
    with (
        running(start_assistant_service(upstream)) as one,
        running(start_assistant_service(upstream, MODELS_FILE=str(models_file))) as twenty,
    ):
        routes = [
            OpenAIRoute("direct", bench.http, upstream.url),
            OpenAIRoute("assistant-1-model", bench.http, one.url),
            OpenAIRoute("assistant-20-models", bench.http, twenty.url),
        ]
        rounds = max(scale.ttft_reps, math.ceil(scale.ttft_turns / 16))
        each = max(1, math.ceil(scale.ttft_turns / rounds))
        for route in routes:  # warm-up: connections, caches; not counted
            await run_batch(route, 1, 2, "warm up")
        for r in range(rounds):
            # Each round starts with the next route: none always follows the same one.
            for route in routes[r % 3 :] + routes[: r % 3]:
                found.setdefault(route.name, []).extend(await run_batch(route, 1, each, "hello"))
    figures: dict[str, object] = {
        "models": PROVIDERS * MODELS_PER_PROVIDER,
        "providers": PROVIDERS,
        "routes": {name: describe(turns) for name, turns in found.items()},
    }
    p50 = {
        name: summary([ms(t.ttft) for t in turns if t.ok]).get("p50", math.nan)
        for name, turns in found.items()
    }
    one_ms, twenty_ms, direct_ms = (
        float(p50["assistant-1-model"]),
        float(p50["assistant-20-models"]),
        float(p50["direct"]),
    )
    ratio = round(twenty_ms / one_ms, 3) if one_ms else math.nan
    figures["p50_ratio_20_to_1"] = ratio
    target = at_most(
        10,
        "TTFT through assistant with 20 models configured / with 1, p50",
        1.1,
        ratio,
        "x",
        note=f"p50 {one_ms:.3f} ms with 1 model, {twenty_ms:.3f} ms with 20 "
        f"(added to direct's {direct_ms:.3f} ms: {one_ms - direct_ms:.3f} and "
        f"{twenty_ms - direct_ms:.3f} ms)",
    )
    return Outcome(figures, [target])
