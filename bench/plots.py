"""PNG plots of the results (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def draw_all(results: dict[str, Any], out: Path) -> list[str]:
    return []
