"""gunicorn's settings file for the production images (`gunicorn -c python:common.gunicorn_conf`).

With several workers on one port, Prometheus metrics live in PROMETHEUS_MULTIPROC_DIR (see
common/metrics.py): the directory is emptied when gunicorn starts (a previous run's files
would be added in), and a worker that exits has its live gauges dropped.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from prometheus_client import multiprocess


def on_starting(server: Any) -> None:
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
        Path(folder).mkdir(parents=True, exist_ok=True)


def child_exit(server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
