"""Targets and the results files: latest.json (every raw figure) and latest.md (the table)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson


@dataclass(frozen=True)
class Target:
    """One target (bench/README.md's table) and what this run measured for it."""

    scenario: int
    name: str
    target: str
    measured: float | int | str
    unit: str
    met: bool
    note: str = ""

    def measured_text(self) -> str:
        value = self.measured
        if isinstance(value, float):
            if math.isnan(value):
                return "n/a"
            if math.isinf(value):
                return f"∞ {self.unit}".strip()
            value = f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"
        return f"{value} {self.unit}".strip()


def at_most(
    scenario: int, name: str, limit: float, measured: float, unit: str, note: str = ""
) -> Target:
    met = not math.isnan(measured) and measured <= limit
    return Target(scenario, name, f"≤ {limit:g} {unit}".strip(), measured, unit, met, note)


def at_least(
    scenario: int, name: str, limit: float, measured: float, unit: str, note: str = ""
) -> Target:
    met = not math.isnan(measured) and measured >= limit
    return Target(scenario, name, f"≥ {limit:g} {unit}".strip(), measured, unit, met, note)


@dataclass
class Outcome:
    """What a scenario returns: its raw figures and its targets."""

    figures: dict[str, Any]
    targets: list[Target]


def _clean(value: Any) -> Any:
    """NaN is not JSON: store it as null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def write_json(path: Path, results: dict[str, Any], targets: list[Target]) -> None:
    document = {
        **results,
        "targets": [{k: v for k, v in asdict(t).items() if k != "note" or v} for t in targets],
    }
    path.write_bytes(orjson.dumps(_clean(document), option=orjson.OPT_INDENT_2))


README_START = "<!-- bench:latest (written by `python -m bench`; do not edit by hand) -->"
README_END = "<!-- /bench:latest -->"


def table(targets: list[Target]) -> list[str]:
    lines = ["| # | target | goal | measured | met |", "| --- | --- | --- | --- | --- |"]
    for t in targets:
        mark = "yes" if t.met else "**no**"
        lines.append(f"| {t.scenario} | {t.name} | {t.target} | {t.measured_text()} | {mark} |")
    return lines


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def peers_section(peers: dict[str, Any]) -> list[str]:
    """The peers beside ours, one row per route, one column per figure of the issue, and
    what each peer was (version, install, start) or why it could not run."""
    if not peers:
        return []
    lines = ["### Side by side with the peers (same run, same fake model, same machine)", ""]
    for name, status in peers.get("status", {}).items():
        if "unavailable" in status:
            lines.append(f"- **{name}** could not run: {status['unavailable']}")
        else:
            lines.append(
                f"- **{name}** {status['version']}: {status['install_mib']:,.0f} MiB installed"
                + (f" in {status['install_seconds']:.0f} s" if status["install_seconds"] else "")
                + f", ready {status['start_seconds']} s after start, "
                f"{status['idle_rss_mib']} MiB resident idle"
            )
    ttft = peers.get("ttft_added_ms", {})
    routes: list[str] = []
    for table in [*ttft.values(), *(peers.get(k, {}) for k in PEER_FIGURES)]:
        routes += [r for r in table if r not in routes]
    head = [f"TTFT added p50/p99 at {lv} (ms)" for lv in ttft]
    head += ["gap added p50/p99 (ms)", "tokens/s ÷ direct", "idle MiB", "KiB per stream"]
    head += ["streams held", "streams per GiB", "requests per CPU-s"]
    lines += ["", f"| route | {' | '.join(head)} |", "|---" * (len(head) + 1) + "|"]
    gaps = peers.get("gap_added_ms", {})
    ratio = peers.get("tokens_per_s_ratio_to_direct", {})
    memory = peers.get("memory", {})
    cpu = peers.get("requests_per_cpu_second", {})
    for route in routes:
        cells = [
            f"{_fmt(lv.get(route, {}).get('p50'))} / {_fmt(lv.get(route, {}).get('p99'))}"
            for lv in ttft.values()
        ]
        gap = gaps.get(route, {})
        held = memory.get(route, {})
        cells += [
            f"{_fmt(gap.get('p50'), 2)} / {_fmt(gap.get('p99'), 2)}",
            _fmt(ratio.get(route), 2),
            _fmt(held.get("idle_rss_mib")),
            _fmt(held.get("kib_per_stream")),
            _fmt(held.get("most_streams_held")),
            _fmt(held.get("streams_per_gib")),
            _fmt(cpu.get(route, {}).get("turns_per_core_s")),
        ]
        lines.append(f"| {route} | {' | '.join(cells)} |")
    lines += [
        "",
        "floor: a bare ASGI relay (bench/relay.py); conversation-sse: conversation and "
        "assistant; nginx-sse: the whole stack (nginx, conversation, assistant, Redis); its "
        "requests per CPU-second are turns (`POST /chat/`) per stack core-second.",
    ]
    return lines


# The peers section's tables by route (besides scenario 1's, which is by level).
PEER_FIGURES = (
    "gap_added_ms",
    "tokens_per_s_ratio_to_direct",
    "memory",
    "requests_per_cpu_second",
)


def update_readme(readme: Path, results: dict[str, Any], targets: list[Target]) -> None:
    """Replace the README's Performance table (between the markers) with this run's."""
    text = readme.read_text()
    head, start, rest = text.partition(README_START)
    _, end, tail = rest.partition(README_END)
    if not start or not end:
        raise ValueError(f"{readme} has no {README_START} ... {README_END} section")
    run = results["run"]
    met = sum(t.met for t in targets)
    body = [
        "",
        f"Latest full run ({run['date']}, {run['machine']['cores']} cores shared by the load "
        f"generator, the fake model and the stack): {met} of {len(targets)} targets met.",
        *speed_line(run["machine"]),
        "",
        *table(targets),
        "",
    ]
    if peers := peers_section(results.get("peers", {})):
        body += [*peers, ""]
    readme.write_text(head + start + "\n".join(body) + end + tail)


def speed_line(machine: dict[str, Any]) -> list[str]:
    """The machine's speed at the run's start and end (bench.procs.speed), when measured."""
    start, end = machine.get("speed_at_start"), machine.get("speed_at_end")
    if not start or not end:
        return []
    return [
        "",
        "Machine speed (lower is faster; on a shared VM it drifts, and every ms figure with "
        f"it): Python loop {start['python_loop_ms']} -> {end['python_loop_ms']} ms, process "
        f"round trip {start['ipc_round_trip_us']} -> {end['ipc_round_trip_us']} us "
        "(start -> end of the run).",
    ]


def markdown(results: dict[str, Any], targets: list[Target], plots: list[str]) -> str:
    run = results["run"]
    met = sum(t.met for t in targets)
    lines = [
        "# Benchmark results",
        "",
        f"{run['date']} · mode `{run['mode']}` · {run['machine']['cores']} cores "
        f"({run['machine']['cpu']}) · {run['duration_s']:.0f} s · command `{run['command']}`",
        "",
        f"{run['sharing']}",
        *speed_line(run["machine"]),
        "",
        f"**{met} of {len(targets)} targets met.**",
        "",
        *table(targets),
    ]
    if peers := peers_section(results.get("peers", {})):
        lines += ["", *peers]
    notes = [t for t in targets if t.note]
    if notes:
        lines += ["", "Notes:", ""]
        lines += [f"- {t.name}: {t.note}" for t in notes]
    if results.get("errors"):
        lines += ["", "Scenarios that failed to run:", ""]
        lines += [f"- {name}: {error}" for name, error in results["errors"].items()]
    if plots:
        lines += ["", "## Plots", ""]
        lines += [f"![{Path(p).stem}]({Path(p).name})" for p in plots]
    return "\n".join(lines) + "\n"
