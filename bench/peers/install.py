"""A peer's own virtual environment under the bench's work folder, made once and kept.

Each peer is installed with `python -m venv` and pip into a folder of its own, so nothing of
it reaches the product's environment, and its (large) install is reused by later runs: a
marker file holds the requirements it was made with, and a different pin makes it anew.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

WORK = Path(os.environ.get("BENCH_WORK", Path.home() / ".cache" / "chatstack-bench"))
MARKER = "chatstack-installed"
INSTALL_TIMEOUT_S = 1800


class PeerUnavailable(RuntimeError):
    """The peer could not be installed or started here; the message says why."""


@dataclass(frozen=True)
class Installed:
    venv: Path
    seconds: float  # 0 when the cached environment was reused
    size_mib: float

    def bin(self, name: str) -> Path:
        return self.venv / "bin" / name


def folder_mib(path: Path) -> float:
    total = sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    return round(total / 2**20, 1)


def ensure(name: str, requirements: list[str]) -> Installed:
    """The peer's environment with exactly `requirements`, installed if not cached."""
    home = WORK / "peers" / name
    venv = home / "venv"
    wanted = "\n".join(requirements) + "\n"
    marker = venv / MARKER
    if marker.exists() and marker.read_text() == wanted:
        return Installed(venv, 0.0, folder_mib(venv))
    shutil.rmtree(venv, ignore_errors=True)
    home.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    log = home / "install.log"
    with log.open("w") as out:
        steps = [
            [sys.executable, "-m", "venv", str(venv)],
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *requirements],
        ]
        for step in steps:
            try:
                done = subprocess.run(
                    step, stdout=out, stderr=subprocess.STDOUT, timeout=INSTALL_TIMEOUT_S
                )
            except subprocess.TimeoutExpired as exc:
                raise PeerUnavailable(f"{name}: install took over {INSTALL_TIMEOUT_S} s") from exc
            if done.returncode != 0:
                errors = [x for x in log.read_text().splitlines() if "ERROR" in x]
                raise PeerUnavailable(
                    f"{name}: {' '.join(step[2:5])} failed ({done.returncode}): "
                    f"{' / '.join(errors[-3:]) or 'see ' + str(log)}"
                )
    marker.write_text(wanted)
    return Installed(venv, round(time.monotonic() - began, 1), folder_mib(venv))
