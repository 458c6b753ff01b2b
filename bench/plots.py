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
    if data.get("open_loop", {}).get("levels"):
        rows.append(
            (
                f"open loop: {data['open_loop']['rate_per_s']:g} turns/s offered",
                data["open_loop"]["levels"],
            )
        )
    # One column per level, so a row without one chat (the open loop) lines up with the rest.
    columns = list(dict.fromkeys(level for _, levels in rows for level in levels))
    grid = fig.subplots(len(rows), len(columns), squeeze=False)
    for axes, (kind, levels) in zip(grid, rows, strict=True):
        for ax, level in zip(axes, columns, strict=True):
            if level not in levels:
                ax.set_axis_off()
                continue
            figures = levels[level]
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


# How the peers plots name each route: what it is, and the peers marked as such.
LABELS = {
    "floor": "floor\n(bare relay)",
    "assistant": "assistant",
    "litellm": "LiteLLM\n(peer)",
    "conversation-sse": "conversation\n+ assistant",
    "nginx-sse": "whole stack\n(nginx SSE)",
    "open-webui": "Open WebUI\n(peer)",
}


def labels(names: list[str]) -> list[str]:
    return [LABELS.get(n, n) for n in names]


def peers_ttft(data: Figures, fig: Figure) -> None:
    levels = data["ttft_added_ms"]
    axes = fig.subplots(1, len(levels), squeeze=False)[0]
    for ax, (level, routes) in zip(axes, levels.items(), strict=True):
        names = list(routes)
        series = {q: [routes[r][q] for r in names] for q in ("p50", "p99")}
        bars(ax, labels(names), series, "added time to first token (ms)")
        # Scenario 1's compared levels: one chat back to back, more chats in an open loop.
        kind = "1 chat, back to back" if level == "1" else f"{level} chats, open loop"
        ax.set_title(kind, fontsize="small")
        ax.tick_params(axis="x", labelsize="x-small")
    fig.suptitle("Peers: time to first token added over going direct (scenario 1)")


def route_chart(fig: Figure, series: dict[str, dict[str, float]], ylabel: str, title: str) -> None:
    """One chart of bars by route (ours and the peers), a bar per series."""
    ax = fig.subplots()
    names = list(next(iter(series.values())))
    values = {name: [by_route.get(r) or 0 for r in names] for name, by_route in series.items()}
    bars(ax, labels(names), values, ylabel)
    ax.set_title(title)
    ax.tick_params(axis="x", labelsize="small")


def peers_gaps(data: Figures, fig: Figure) -> None:
    routes = data["gap_added_ms"]
    series = {q: {r: v[q] for r, v in routes.items()} for q in ("p50", "p99")}
    route_chart(
        fig, series, "added |gap - pace| (ms)", "Peers: gap added between tokens (scenario 2)"
    )


def peers_throughput(data: Figures, fig: Figure) -> None:
    route_chart(
        fig,
        {"x direct": data["tokens_per_s_ratio_to_direct"]},
        "tokens/s, route / direct",
        "Peers: one long reply's tokens per second against direct (scenario 3)",
    )


def peers_memory(data: Figures, fig: Figure) -> None:
    idle_ax, stream_ax, held_ax = fig.subplots(1, 3)
    memory = data["memory"]
    names = list(memory)
    shown = labels(names)
    bars(idle_ax, shown, {"idle": [memory[r]["idle_rss_mib"] for r in names]}, "resident MiB")
    bars(
        stream_ax,
        shown,
        {"per stream": [memory[r]["kib_per_stream"] or 0 for r in names]},
        "KiB per open stream",
    )
    bars(
        held_ax,
        shown,
        {"per GiB": [memory[r]["streams_per_gib"] for r in names]},
        "streams held per GiB (at the most held)",
    )
    for ax in (idle_ax, stream_ax, held_ax):
        ax.tick_params(axis="x", labelsize="x-small")
    fig.suptitle("Peers: memory idle, per open stream, streams per GiB (scenario 4)")


def peers_cpu(data: Figures, fig: Figure) -> None:
    rates = {r: v["turns_per_core_s"] for r, v in data["requests_per_cpu_second"].items()}
    route_chart(
        fig,
        {"at the knee": rates},
        "requests per CPU-second",
        "Peers: non-streaming requests per CPU-second at the knee (scenario 5)",
    )


# The peers section's figures: (its key, the plot, size).
PEER_PLOTS: dict[str, tuple[str, Callable[[Figures, Figure], None], tuple[float, float]]] = {
    "peers_1_first_token": ("ttft_added_ms", peers_ttft, (14, 4.5)),
    "peers_2_token_gaps": ("gap_added_ms", peers_gaps, (8, 4.5)),
    "peers_3_throughput": ("tokens_per_s_ratio_to_direct", peers_throughput, (8, 4.5)),
    "peers_4_memory": ("memory", peers_memory, (14, 4.5)),
    "peers_5_cpu": ("requests_per_cpu_second", peers_cpu, (8, 4.5)),
}

PLOTS: dict[str, tuple[Callable[[Figures, Figure], None], tuple[float, float]]] = {
    "1_first_token": (first_token, (14, 12)),
    "2_token_gaps": (token_gaps, (7, 4.5)),
    "3_throughput": (throughput, (7, 4.5)),
    "4_concurrency": (concurrency, (11, 4.5)),
    "5_sustained": (sustained, (11, 4.5)),
    "7_history": (history, (8, 4.5)),
    "8_model": (model, (14, 4)),
}


def draw_all(results: dict[str, Any], out: Path) -> list[str]:
    """One PNG per scenario that has a plot and ran; returns their paths."""
    wanted = [
        (key, draw, size, results["scenarios"].get(key)) for key, (draw, size) in PLOTS.items()
    ]
    peers = results.get("peers", {})
    wanted += [
        (key, draw, size, peers if part in peers else None)
        for key, (part, draw, size) in PEER_PLOTS.items()
    ]
    written: list[str] = []
    for key, draw, size, data in wanted:
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
