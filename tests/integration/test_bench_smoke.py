"""The benchmark in miniature (`python -m bench --quick`), so that it cannot rot.

Only the shape of the results is checked: every scenario ran and wrote well-formed figures,
targets and plots. Never a time or a rate: those belong to the full run on a quiet machine
(bench/README.md), not to a test.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.support.servers import ROOT

SCENARIOS = {
    1: "first_token",
    2: "token_gaps",
    3: "throughput",
    4: "concurrency",
    5: "sustained",
    6: "redis_cost",
    7: "history",
    8: "model",
    9: "search",
    10: "routing",
    11: "redis_memory",
    12: "cold_start",
    13: "local_concurrency",
}
PLOTTED = {1, 2, 3, 4, 5, 7, 8}

pytestmark = pytest.mark.model  # scenario 8 runs the embedded SmolLM2 model


def missing_tools() -> list[str]:
    missing = [tool for tool in ("wrk",) if shutil.which(tool) is None]
    missing += [m for m in ("gunicorn", "uvicorn_worker") if importlib.util.find_spec(m) is None]
    return missing


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if missing := missing_tools():
        pytest.skip(
            f"the benchmark needs {', '.join(missing)} (pip install -e '.[bench]', "
            "apt-get install wrk)"
        )
    out = tmp_path_factory.mktemp("bench")
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    return out


def test_every_scenario_wrote_its_figures(results: Path) -> None:
    data = orjson.loads((results / "latest.json").read_bytes())
    assert data["errors"] == {}
    assert data["run"]["mode"] == "quick"
    assert data["run"]["machine"]["cores"] >= 1
    assert data["run"]["load_generator_shares_cores"] is True
    for moment in ("speed_at_start", "speed_at_end"):
        speed = data["run"]["machine"][moment]
        assert speed["python_loop_ms"] > 0 and speed["ipc_round_trip_us"] > 0, speed
    for number, name in SCENARIOS.items():
        figures = data["scenarios"][f"{number}_{name}"]
        assert isinstance(figures, dict) and figures, name


def test_every_target_is_well_formed(results: Path) -> None:
    targets = orjson.loads((results / "latest.json").read_bytes())["targets"]
    assert {t["scenario"] for t in targets} == set(SCENARIOS)
    for target in targets:
        assert {"name", "target", "measured", "met"} <= set(target), target
        assert isinstance(target["met"], bool)
        assert isinstance(target["measured"], int | float | str | None)
        assert target["name"] and target["target"]


def test_the_streams_carried_every_token(results: Path) -> None:
    """No route lost a reply: the smoke run's errors are counted, and there are none."""
    scenarios = orjson.loads((results / "latest.json").read_bytes())["scenarios"]
    first_token = scenarios["1_first_token"]
    open_loop = first_token["open_loop"]["levels"]
    assert open_loop and all("floor" in level["routes"] for level in open_loop.values())
    for level in [
        *first_token["levels"].values(),
        *first_token["paced"]["levels"].values(),
        *open_loop.values(),
    ]:
        for route, figures in level["routes"].items():
            assert figures["errors"] == 0, (route, figures["first_error"])
    for route, figures in scenarios["2_token_gaps"]["routes"].items():
        assert figures["errors"] == 0, route
        assert figures["gaps"], route
    for route, figures in scenarios["3_throughput"]["routes"].items():
        # A rate at all: a reply that arrives in one read has none, and the smoke run's
        # reply is long enough to span several reads on every route.
        assert figures["errors"] == 0 and figures["median_tokens_per_s"], (route, figures)
    for variant, held in scenarios["4_concurrency"]["held"].items():
        assert held["errors"] == 0, (variant, held["first_error"])
        # The stall rule ran with its direct baseline: both kinds of stall are counted.
        assert {"late_first_token", "stalled_between_tokens"} <= set(held), variant


def test_the_floor_ran_beside_ours_and_no_peer_did(results: Path) -> None:
    """The floor (the bare relay) is measured in every run; the peers only with --peers."""
    data = orjson.loads((results / "latest.json").read_bytes())
    scenarios = data["scenarios"]
    for level in scenarios["1_first_token"]["levels"].values():
        assert level["routes"]["floor"]["errors"] == 0, level["routes"]["floor"]["first_error"]
        assert "floor" in level["added_p50_ms"]
        assert not {"litellm", "open-webui"} & set(level["routes"])
    assert scenarios["2_token_gaps"]["routes"]["floor"]["gaps"]
    floor = scenarios["4_concurrency"]["ramps"]["floor"]
    assert floor["steps"] and floor["steps"][-1]["errors"] == 0, floor["steps"]
    assert floor["idle_rss_mib"] > 0
    assert "peers" not in data
    names = {t["name"] for t in data["targets"]}
    assert any("assistant / floor" in n for n in names), names


def test_redis_memory_and_cold_start_measured(results: Path) -> None:
    scenarios = orjson.loads((results / "latest.json").read_bytes())["scenarios"]
    memory = scenarios["11_redis_memory"]
    assert memory["messages"] > 0 and memory["text_bytes"] > 0
    assert memory["used_memory_growth_bytes"] > 0
    cold = scenarios["12_cold_start"]
    assert 0 < cold["stack_is_up_s"] < cold["first_token_s"]
    assert cold["assistant_ready_s"]


def test_table_and_plots(results: Path) -> None:
    table = (results / "latest.md").read_text()
    assert "| # | target | goal | measured | met |" in table
    assert "Machine speed" in table
    for number in PLOTTED:
        png = results / f"{number}_{SCENARIOS[number]}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
