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
