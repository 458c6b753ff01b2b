"""PNG plots of a run's figures (matplotlib's Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after use("Agg"): the backend must be chosen first
from matplotlib.axes import Axes
from matplotlib.figure import Figure

Figures = dict[str, Any]


def bars(ax: Axes, labels: list[str], series: dict[str, list[float]], ylabel: str) -> None:
    width = 0.8 / max(len(series), 1)
    for i, (name, values) in enumerate(series.items()):
        xs = [x + i * width for x in range(len(labels))]
        ax.bar(xs, values, width, label=name)
    ax.set_xticks([x + width * (len(series) - 1) / 2 for x in range(len(labels))], labels)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize="small")
    ax.grid(axis="y", alpha=0.3)


def first_token(data: Figures, fig: Figure) -> None:
    rows = [
        ("closed loops, no delay", data["levels"]),
        (
            f"paced: {data['paced']['tokens']} tokens {data['paced']['pace_ms']} ms apart, "
            f"think {'-'.join(str(t) for t in data['paced']['think_s'])} s",
            data["paced"]["levels"],
        ),
    ]
    columns = max(len(levels) for _, levels in rows)
    grid = fig.subplots(len(rows), columns, squeeze=False)
    for axes, (kind, levels) in zip(grid, rows, strict=True):
        for ax, (level, figures) in zip(axes, levels.items(), strict=False):
            routes = list(figures["routes"])
            series = {
                q: [figures["routes"][r]["ttft_ms"].get(q, 0) for r in routes]
                for q in ("p50", "p99")
            }
            bars(ax, [r.replace("-", "\n") for r in routes], series, "time to first token (ms)")
            ax.set_title(f"{kind}: {level} chat{'s' if level != '1' else ''}", fontsize="small")
            ax.tick_params(axis="x", labelsize="x-small")
    fig.suptitle("Scenario 1: time to first token by route (fake model)")


def token_gaps(data: Figures, fig: Figure) -> None:
    ax = fig.subplots()
    for name, figures in data["routes"].items():
        gaps = sorted(figures["gaps"])
        if gaps:
            ax.plot(gaps, [(i + 1) / len(gaps) for i in range(len(gaps))], label=name)
    ax.axvline(data["pace_ms"], color="grey", linestyle=":", label="pace")
    ax.set_xlabel("gap between consecutive tokens at the client (ms)")
    ax.set_ylabel("fraction of gaps ≤ x")
    ax.set_title(f"Scenario 2: {data['tokens']} tokens {data['pace_ms']} ms apart")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)


def throughput(data: Figures, fig: Figure) -> None:
    ax = fig.subplots()
    routes = list(data["routes"])
    values = [data["routes"][r]["median_tokens_per_s"] or 0 for r in routes]
    bars(ax, routes, {"median tokens/s": values}, "tokens per second")
    ax.set_title(f"Scenario 3: one {data['tokens']}-token reply, no delay")
    ax.tick_params(axis="x", labelsize="small")


def concurrency(data: Figures, fig: Figure) -> None:
    held = data["held"]
    axes = fig.subplots(1, 2)
    for ax, service in zip(axes, ("conversation", "assistant"), strict=True):
        for variant, figures in held.items():
            series = figures["rss_series"]
            ax.plot([p["t"] for p in series], [p[service] for p in series], label=variant)
        ax.set_title(service)
        ax.set_xlabel("seconds since the streams were opened")
        ax.set_ylabel("resident memory (MiB)")
        ax.legend(fontsize="small")
        ax.grid(alpha=0.3)
    streams = next(iter(held.values()))["streams"]
    fig.suptitle(f"Scenario 4: {streams} streams held open at once")


def sustained(data: Figures, fig: Figure) -> None:
    rate_ax, p99_ax = fig.subplots(1, 2)
    for name in ("uvicorn", "gunicorn"):
        steps = data[name]["steps"]
        conns = [s["connections"] for s in steps]
        label = name if name == "uvicorn" else f"gunicorn x{data[name]['workers']}"
        rate_ax.plot(conns, [s["turns_per_s"] for s in steps], marker="o", label=label)
        p99_ax.plot(conns, [s["p99_ms"] for s in steps], marker="o", label=label)
    p99_ax.axhline(data["knee_p99_ms"], color="grey", linestyle=":", label="knee limit")
    for ax, ylabel in ((rate_ax, "turns per second"), (p99_ax, "p99 latency (ms)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("wrk connections")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize="small")
        ax.grid(alpha=0.3)
    fig.suptitle("Scenario 5: non-streaming turns through nginx (wrk)")


def history(data: Figures, fig: Figure) -> None:
    ax = fig.subplots()
    sizes = list(data["sizes"])
    series = {
        f"{key.removesuffix('_ms')} p50": [data["sizes"][n][key]["p50"] for n in sizes]
        for key in ("ttft_ms", "turn_ms", "read_history_ms")
    }
    bars(ax, [f"{int(n):,} messages" for n in sizes], series, "ms")
    ax.set_title("Scenario 7: posting into a session by stored history")


def model(data: Figures, fig: Figure) -> None:
    rate_ax, ttft_ax, ratio_ax = fig.subplots(1, 3)
    names = ["direct", "assistant"]
    bars(rate_ax, names, {"tokens/s": [data[n]["median_tokens_per_s"] for n in names]}, "tokens/s")
    bars(ttft_ax, names, {"p50": [data[n]["ttft_ms"]["p50"] for n in names]}, "first token (ms)")
    paired = data["paired"]
    ratios = paired["ratios"]
    ratio_ax.plot(range(1, len(ratios) + 1), ratios, marker="o", linestyle="", label="pair")
    ratio_ax.axhline(paired["median_ratio"], color="C1", label="median")
    ratio_ax.axhspan(*paired["ci95_median_ratio"], color="C1", alpha=0.2, label="95% CI")
    ratio_ax.axhline(0.99, color="grey", linestyle=":", label="target")
    ratio_ax.set_xlabel("pair")
    ratio_ax.set_ylabel("tokens/s, assistant / direct")
    ratio_ax.legend(fontsize="small")
    ratio_ax.grid(alpha=0.3)
    fig.suptitle("Scenario 8: SmolLM2-135M, llama-cpp-python directly vs through assistant")


PLOTS: dict[str, tuple[Callable[[Figures, Figure], None], tuple[float, float]]] = {
    "1_first_token": (first_token, (14, 8)),
    "2_token_gaps": (token_gaps, (7, 4.5)),
    "3_throughput": (throughput, (7, 4.5)),
    "4_concurrency": (concurrency, (11, 4.5)),
    "5_sustained": (sustained, (11, 4.5)),
    "7_history": (history, (8, 4.5)),
    "8_model": (model, (14, 4)),
}


def draw_all(results: dict[str, Any], out: Path) -> list[str]:
    """One PNG per scenario that has a plot and ran; returns their paths."""
    written: list[str] = []
    for key, (draw, size) in PLOTS.items():
        data = results["scenarios"].get(key)
        if data is None:
            continue
        fig = plt.figure(figsize=size, layout="constrained")
        try:
            draw(data, fig)
            path = out / f"{key}.png"
            fig.savefig(path, dpi=90)
            written.append(str(path))
        finally:
            plt.close(fig)
    return written
