"""`python -m bench [--quick] [--only 1,3] [--out DIR]`: run the scenarios, write the results.

Every scenario measures its baseline in the same run: the fake model straight (1-7) or
llama-cpp-python called in this process (8). Results: DIR/latest.json, DIR/latest.md and
DIR/*.png (DIR defaults to bench/results).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import procs
from bench.clients import http_session
from bench.context import FULL, QUICK, Bench, Scale
from bench.peers.running import running_peers
from bench.peers.summary import side_by_side
from bench.report import Outcome, Target, markdown, update_readme, write_json
from bench.scenarios import (
    cold_start,
    concurrency,
    first_token,
    history,
    local_concurrency,
    model,
    redis_cost,
    redis_memory,
    routing,
    search,
    sustained,
    throughput,
    token_gaps,
)
from bench.stack import running_stack

RESULTS = Path(__file__).resolve().parent / "results"
README = RESULTS.parent.parent / "README.md"

Scenario = Callable[[Bench], Awaitable[Outcome]]
SCENARIOS: dict[int, tuple[str, Scenario]] = {
    1: ("first_token", first_token.run),
    2: ("token_gaps", token_gaps.run),
    3: ("throughput", throughput.run),
    4: ("concurrency", concurrency.run),
    5: ("sustained", sustained.run),
    6: ("redis_cost", redis_cost.run),
    7: ("history", history.run),
    8: ("model", model.run),
    9: ("search", search.run),
    10: ("routing", routing.run),
    11: ("redis_memory", redis_memory.run),
    12: ("cold_start", cold_start.run),
    13: ("local_concurrency", local_concurrency.run),
}

SHARING = (
    "Load generator, fake model and the stack share the same cores: every process of the "
    "run is on this machine, so the figures include the client's and the fake's CPU use."
)

log = logging.getLogger("bench")


async def run_all(
    scale: Scale, only: list[int], with_peers: bool
) -> tuple[dict[str, Any], list[Target]]:
    figures: dict[str, Any] = {}
    errors: dict[str, str] = {}
    targets: list[Target] = []
    async with http_session() as http:
        with running_stack() as stack, running_peers(stack.upstream, with_peers) as peers:
            for name, status in peers.status.items():
                log.info("peer %s: %s", name, status)
            bench = Bench(scale, stack, http, peers)
            for number in only:
                name, scenario = SCENARIOS[number]
                began = time.monotonic()
                log.info("scenario %d (%s) ...", number, name)
                try:
                    outcome = await scenario(bench)
                except Exception as exc:
                    log.exception("scenario %d failed", number)
                    errors[f"{number}_{name}"] = f"{type(exc).__name__}: {exc}"
                    if scale.quick:
                        errors[f"{number}_{name}"] += "\n" + traceback.format_exc()
                    continue
                took = time.monotonic() - began
                figures[f"{number}_{name}"] = {**outcome.figures, "seconds": round(took, 1)}
                targets.extend(outcome.targets)
                for t in outcome.targets:
                    log.info(
                        "  %s: %s (target %s) %s",
                        t.name,
                        t.measured_text(),
                        t.target,
                        "met" if t.met else "NOT MET",
                    )
    results = {"scenarios": figures, "errors": errors}
    if with_peers:
        results["peers"] = {"status": peers.status, **side_by_side(figures)}
    return results, targets


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="smoke-test scale (seconds)")
    parser.add_argument("--only", default="", help="comma-separated scenario numbers")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument(
        "--peers",
        action="store_true",
        help="also run LiteLLM's proxy and Open WebUI beside the stack (installed once into "
        "~/.cache/chatstack-bench/peers: minutes and ~8 GB the first time)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # readiness polls
    scale = QUICK if args.quick else FULL
    only = [int(n) for n in args.only.split(",") if n] or sorted(SCENARIOS)
    began = time.monotonic()
    date = datetime.now(UTC).isoformat(timespec="seconds")
    machine = procs.machine()
    machine["speed_at_start"] = procs.speed()
    results, targets = asyncio.run(run_all(scale, only, args.peers))
    machine["speed_at_end"] = procs.speed()
    command = "python -m bench" + (" --quick" if args.quick else "")
    command += " --peers" if args.peers else ""
    if args.only:
        command += f" --only {args.only}"
    results = {
        "run": {
            "date": date,
            "mode": "quick" if scale.quick else "full",
            "command": command,
            "machine": machine,
            "duration_s": round(time.monotonic() - began, 1),
            "sharing": SHARING,
            "load_generator_shares_cores": True,
        },
        **results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    plots: list[str] = []
    if not args.no_plots:
        from bench.plots import draw_all

        plots = draw_all(results, args.out)
    write_json(args.out / "latest.json", results, targets)
    (args.out / "latest.md").write_text(markdown(results, targets, plots))
    log.info("wrote %s", args.out / "latest.json")
    # Only a complete full run into the repository's results speaks for the README.
    if not scale.quick and not args.only and args.out == RESULTS and not results["errors"]:
        update_readme(README, results, targets)
        log.info("updated the Performance section of %s", README)
    if results["errors"]:
        sys.exit(1)
