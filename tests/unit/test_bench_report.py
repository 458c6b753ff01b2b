"""The README's Performance table is rewritten between its markers, and only there."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.report import README_END, README_START, Target, update_readme

RESULTS = {"run": {"date": "2026-01-01T00:00:00+00:00", "machine": {"cores": 2}}}
TARGETS = [
    Target(1, "TTFT added", "≤ 3 ms", 2.5, "ms", True),
    Target(3, "throughput", "≥ 0.9 x", 0.5, "x", False),
]


def test_the_section_between_the_markers_is_replaced(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\n{README_START}\nold table\n{README_END}\n\nAfter.\n")
    update_readme(readme, RESULTS, TARGETS)
    text = readme.read_text()
    assert text.startswith(f"# Title\n\n{README_START}\n")
    assert text.endswith(f"{README_END}\n\nAfter.\n")
    assert "old table" not in text
    assert "1 of 2 targets met" in text
    assert "| 3 | throughput | ≥ 0.9 x |" in text and "**no**" in text
    update_readme(readme, RESULTS, TARGETS)
    assert readme.read_text() == text


def test_a_readme_without_the_markers_is_left_alone(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n")
    with pytest.raises(ValueError, match="no"):
        update_readme(readme, RESULTS, TARGETS)
    assert readme.read_text() == "# Title\n"


def test_the_repository_readme_has_the_section() -> None:
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert text.index(README_START) < text.index(README_END)


def test_the_machine_speed_goes_with_the_table_when_measured(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"{README_START}\n{README_END}\n")
    speed = {"python_loop_ms": 33.0, "ipc_round_trip_us": 50.0}
    machine = {"cores": 2, "speed_at_start": speed, "speed_at_end": speed}
    update_readme(readme, {"run": {**RESULTS["run"], "machine": machine}}, TARGETS)
    assert "Python loop 33.0 -> 33.0 ms, process round trip 50.0 -> 50.0 us" in readme.read_text()
