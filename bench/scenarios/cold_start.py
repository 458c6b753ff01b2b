"""Scenario 12: from nothing running to the first streamed token, and a stopped assistant
back to ready.

- Cold start: the real local run (`./stack up` = scripts/up.sh with the install step
  skipped, as once installed) on free ports with the embedded local model (the default
  provider): the clock starts as up.sh is launched and stops at the first token of a reply
  streamed through nginx, asked for the moment up.sh prints that the stack is up. Its
  "stack is up" moment is given too.
- Assistant restart: assistant with the local model, started as the Procfile starts it, to
  its `/health/ready` (model loaded); a few times, the median.
The model file is already on disk and, after the first start, in the page cache: what is
measured is the processes' own start, not a disk.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.clients import create_session, sse_turn
from bench.context import Bench
from bench.report import Outcome, at_most
from bench.stack import start_local_assistant
from tests.integration.deploy.conftest import INDEX_HTML
from tests.integration.deploy.local_stack import local_run
from tests.support.servers import ROOT

FIRST_TOKEN_S = 10
ASSISTANT_READY_S = 3
RESTARTS, QUICK_RESTARTS = 5, 1
REPLICAS = 2  # up.sh's default CONVERSATION_REPLICAS


def static_root(folder: Path) -> Path:
    """The built UI when there is one, else a one-page stand-in: the page is not timed."""
    dist = ROOT / "chatui" / "dist"
    if (dist / "index.html").exists():
        return dist
    folder.chmod(0o755)
    (folder / "index.html").write_text(INDEX_HTML)
    (folder / "index.html").chmod(0o644)
    return folder


async def cold_start(bench: Bench, folder: Path) -> dict[str, Any]:
    settings = {
        "PYTHON": sys.executable,
        "STATIC_ROOT": str(static_root(folder)),
        "ASSISTANT_PROVIDER": "local",
    }
    began = time.perf_counter()
    with local_run(settings, REPLICAS) as run:
        up = time.perf_counter() - began
        session = await create_session(bench.http, run.url)
        turn = await sse_turn(bench.http, run.url, session, "Hello!")
    if not turn.ok:
        raise RuntimeError(f"the first reply failed: {turn.error}")
    return {
        "stack_is_up_s": round(up, 2),
        "first_token_s": round(turn.token_times[0] - began, 2),
        "first_token_after_up_ms": round((turn.token_times[0] - turn.start) * 1000, 1),
        "replicas": REPLICAS,
    }


def assistant_restarts(count: int) -> list[float]:
    took = []
    for _ in range(count):
        began = time.perf_counter()
        server = start_local_assistant()
        took.append(time.perf_counter() - began)
        server.stop()
    return took


async def run(bench: Bench) -> Outcome:
    folder = Path(tempfile.mkdtemp(prefix="bench-site-"))
    cold = await cold_start(bench, folder)
    restarts = assistant_restarts(QUICK_RESTARTS if bench.scale.quick else RESTARTS)
    ready = statistics.median(restarts)
    figures = {
        **cold,
        "assistant_ready_s": [round(t, 2) for t in restarts],
        "assistant_ready_median_s": round(ready, 2),
    }
    targets = [
        at_most(
            12,
            "cold start: ./stack up (installed) to the local model's first streamed token",
            FIRST_TOKEN_S,
            cold["first_token_s"],
            "s",
            note=f"up.sh said the stack is up after {cold['stack_is_up_s']} s; the reply's "
            f"first token {cold['first_token_after_up_ms']} ms after it was asked for",
        ),
        at_most(
            12,
            "stopped assistant (local model) to ready",
            ASSISTANT_READY_S,
            round(ready, 2),
            "s",
            note=f"median of {len(restarts)}: {', '.join(f'{t:.2f}' for t in restarts)} s",
        ),
    ]
    return Outcome(figures, targets)
