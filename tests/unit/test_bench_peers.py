"""The peers' side of the bench without running them: their cached environments, the
`peers` section read from the scenarios' figures, its table, and the ratio helper."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from bench.peers import install
from bench.peers.summary import side_by_side
from bench.report import peers_section
from bench.scenarios.concurrency import open_webui_target
from bench.stats import ratio

SCENARIOS = {
    "1_first_token": {
        "levels": {
            "1": {
                "added_p50_ms": {"floor": 0.5, "assistant": 0.9, "litellm": 20.0, "nginx-ws": 3.0},
                "added_p99_ms": {"floor": 0.8, "assistant": 1.2, "litellm": 40.0, "nginx-ws": 5.0},
            }
        }
    },
    "4_concurrency": {
        "ramps": {
            "floor": {
                "idle_rss_mib": 40.0,
                "kib_per_stream": 20.0,
                "most_streams_held": 1000,
                "streams_per_gib": 900.0,
            }
        }
    },
}


def test_the_side_by_side_keeps_ours_and_the_peers_only() -> None:
    found = side_by_side(SCENARIOS)
    assert list(found["ttft_added_ms"]["1"]) == ["floor", "assistant", "litellm"]
    assert found["ttft_added_ms"]["1"]["litellm"] == {"p50": 20.0, "p99": 40.0}
    assert found["memory"]["floor"]["most_streams_held"] == 1000
    assert "gap_added_ms" not in found


def test_the_table_says_why_a_peer_could_not_run() -> None:
    peers = {
        "status": {
            "litellm": {
                "version": "1.0",
                "install_mib": 400.0,
                "install_seconds": 0.0,
                "start_seconds": 14.0,
                "idle_rss_mib": 380.0,
            },
            "open-webui": {"unavailable": "open-webui: pip install failed (1): no space"},
        },
        **side_by_side(SCENARIOS),
    }
    text = "\n".join(peers_section(peers))
    assert "**open-webui** could not run: open-webui: pip install failed (1): no space" in text
    assert "**litellm** 1.0: 400 MiB installed, ready 14.0 s after start" in text
    assert "| litellm | 20.0 / 40.0 |" in text
    assert "| floor | 0.5 / 0.8 | n/a / n/a | n/a | 40.0 | 20.0 | 1,000 | 900.0 | n/a |" in text
    assert peers_section({}) == []


def test_a_cached_environment_is_reused_and_a_new_pin_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(install, "WORK", tmp_path)
    venv = tmp_path / "peers" / "peer" / "venv"
    venv.mkdir(parents=True)
    (venv / install.MARKER).write_text("peer==1.0\n")
    (venv / "lib.py").write_bytes(b"x" * 2**20)
    found = install.ensure("peer", ["peer==1.0"])
    assert (found.venv, found.seconds) == (venv, 0.0)
    assert found.size_mib == 1.0
    # Another pin makes the environment anew: here pip cannot find the package, and the
    # reason names the step that failed.
    monkeypatch.setattr(install, "INSTALL_TIMEOUT_S", 120)
    with pytest.raises(install.PeerUnavailable, match="peer"):
        install.ensure("peer", ["/nonexistent/peer-2.0.tar.gz"])
    assert not (venv / install.MARKER).exists()


def test_ratio_is_no_figure_without_a_positive_denominator() -> None:
    assert ratio(3, 2) == 1.5
    assert ratio(1, 3, 3) == 0.333
    for bad in (0, -1, None):
        assert math.isnan(ratio(1, bad))
    assert math.isnan(ratio(None, 1))


def test_past_one_chat_the_side_by_side_reads_the_open_loop_levels() -> None:
    """The targets at 16 and 64 chats read open-loop chats; so does the peers' table."""
    closed = {"added_p50_ms": {"floor": -0.1}, "added_p99_ms": {"floor": -0.3}}
    opened = {"added_p50_ms": {"floor": 0.4}, "added_p99_ms": {"floor": 0.9}}
    alone = {
        "added_p50_ms": {"floor": 0.5, "assistant": 0.9},
        "added_p99_ms": {"floor": 0.8, "assistant": 1.2},
    }
    scenarios = {
        "1_first_token": {
            "levels": {"1": alone, "16": closed},
            "open_loop": {"levels": {"16": opened}},
        }
    }
    found = side_by_side(scenarios)["ttft_added_ms"]
    assert list(found) == ["1", "16"]
    assert found["1"]["floor"] == {"p50": 0.5, "p99": 0.8}
    assert found["16"]["floor"] == {"p50": 0.4, "p99": 0.9}


def held(streams: int, per_gib: float, late: int) -> dict[str, Any]:
    """A memory ramp's figures as scenario 4 writes them, one step."""
    step = {
        "streams": 100,
        "errors": 0,
        "first_error": None,
        "late_first_token": late,
        "first_token_limit_ms": 2100.0,
        "stalled_between_tokens": 0,
        "gap_limit_ms": 2000,
    }
    return {
        "most_streams_held": streams,
        "streams_per_gib": per_gib,
        "idle_rss_mib": 300.0,
        "steps": [step],
    }


def test_streams_per_gib_against_a_peer_that_held_none_meets_the_target() -> None:
    memory = {"nginx-sse": held(300, 997.1, 0), "open-webui": held(0, 0, 100)}
    [target] = open_webui_target(memory)
    assert target.met and target.measured == math.inf
    assert target.measured_text() == "∞ x"
    assert "100 first tokens after 2100.0 ms" in target.note
    memory = {"nginx-sse": held(300, 900.0, 0), "open-webui": held(10, 100.0, 0)}
    [target] = open_webui_target(memory)
    assert (target.measured, target.met) == (9.0, False)
    assert open_webui_target({"nginx-sse": held(300, 900.0, 0)}) == []
