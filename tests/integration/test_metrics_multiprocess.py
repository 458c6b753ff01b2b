"""Multiprocess mode: assistant under gunicorn with two uvicorn workers and
PROMETHEUS_MULTIPROC_DIR; whichever worker answers `GET /metrics` counts every worker's
requests."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from tests.support.conversation import assistant_env
from tests.support.metrics import parse
from tests.support.servers import (
    PYTHON,
    Server,
    free_port,
    http_ok,
    start,
    start_fake_upstream,
)

WORKERS = 2
REQUESTS = 60
LIVE = {"method": "GET", "route": "/health/live", "status": "200"}


@pytest.fixture(scope="module")
def gunicorn_assistant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    metrics_dir = tmp_path_factory.mktemp("prometheus")
    # A previous run's file: the images' gunicorn settings empty the folder at start.
    stale = metrics_dir / "counter_1.db"
    stale.write_bytes(b"stale")
    upstream = start_fake_upstream()
    port = free_port()
    # As the images run it (assistant/Dockerfile).
    cmd = [
        *[PYTHON, "-m", "gunicorn", "assistant.app:create_app()"],
        *["--bind", f"127.0.0.1:{port}", "--workers", str(WORKERS)],
        *["--worker-class", "common.gunicorn_workers.Worker"],
        *["--config", "python:common.gunicorn_conf"],
    ]
    env = {**assistant_env(upstream), "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    try:
        server = start(
            "assistant-gunicorn", cmd, port, http_ok(f"http://127.0.0.1:{port}/health/ready"), env
        )
        assert not stale.exists()
        try:
            yield server, metrics_dir
        finally:
            server.stop()
    finally:
        upstream.stop()


async def concurrent_gets(url: str, count: int) -> None:
    # One connection each, all at once, so that both workers take some.
    async def one() -> None:
        async with httpx.AsyncClient() as client:
            assert (await client.get(url)).status_code == 200

    await asyncio.gather(*(one() for _ in range(count)))


def counted_by(metrics_dir: Path, pid_file: Path, tmp: Path) -> float:
    """The requests one worker counted: its own file alone, read as the collector reads it."""
    alone = tmp / pid_file.stem
    alone.mkdir()
    shutil.copy(pid_file, alone)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(alone))  # type: ignore[no-untyped-call]
    return parse(generate_latest(registry).decode()).value("chatstack_http_requests_total", **LIVE)


def test_any_worker_answers_for_all_of_them(
    gunicorn_assistant: tuple[Server, Path], tmp_path: Path
) -> None:
    server, metrics_dir = gunicorn_assistant
    before = parse(httpx.get(f"{server.url}/metrics").text)
    asyncio.run(concurrent_gets(f"{server.url}/health/live", REQUESTS))
    per_worker = [
        counted_by(metrics_dir, f, tmp_path) for f in sorted(metrics_dir.glob("counter_*.db"))
    ]
    assert sum(1 for n in per_worker if n > 0) == WORKERS, per_worker
    expected = before.value("chatstack_http_requests_total", **LIVE) + REQUESTS
    for _ in range(2 * WORKERS):  # new connections: answered by one worker or another
        scraped = parse(httpx.get(f"{server.url}/metrics").text)
        assert scraped.value("chatstack_http_requests_total", **LIVE) == expected
