"""chatui/src/api.gen.ts is what scripts/gen_ui_types.py makes of conversation's models now.

Run in a child process: building the app configures logging, which this process keeps. No
server, no network: the document comes from the app object, the TypeScript from chatui's
installed openapi-typescript.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gen_ui_types.py"
GENERATED = ROOT / "chatui" / "src" / "api.gen.ts"


def check(path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--check", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )


def test_the_generated_types_match_the_models() -> None:
    result = check(GENERATED)
    assert result.returncode == 0, result.stderr


def test_a_file_that_lags_a_model_change_fails_the_check(tmp_path: Path) -> None:
    # As if SessionDetail's has_more had been added to the model after the last generation.
    current = GENERATED.read_text()
    assert current.count("has_more?: boolean;") == 1
    stale = tmp_path / "api.gen.ts"
    stale.write_text(current.replace("has_more?: boolean;", ""))
    result = check(stale)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr
