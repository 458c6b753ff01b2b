"""Real nginx instances, rendered by nginx/render.py, in front of small real upstream apps."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.nginx import start_nginx
from tests.support.servers import PYTHON, Server, free_port, http_ok, start

# Bigger than gzip_min_length, and compressible, so gzip has something to do.
ASSET_JS = "export const greeting = 'hello';\n" * 200
INDEX_HTML = (
    "<!doctype html><html><head><title>chat</title>"
    '<script type="module" src="/assets/app-1a2b3c4d.js"></script></head>'
    '<body><div id="root"></div></body></html>\n'
)


def start_upstream(name: str) -> Server:
    port = free_port()
    cmd = [PYTHON, "-m", "tests.integration.deploy.upstream_app", "--port", str(port)]
    cmd += ["--name", name]
    return start(name, cmd, port, http_ok(f"http://127.0.0.1:{port}/api/health"))


def addresses(servers: list[Server]) -> list[str]:
    return [f"127.0.0.1:{s.port}" for s in servers]


@pytest.fixture(scope="package")
def static_root() -> Path:
    """A stand-in for chatui/dist: the page, one hashed asset, one unhashed file."""
    root = Path(tempfile.mkdtemp(prefix="site-"))
    (root / "assets").mkdir()
    (root / "index.html").write_text(INDEX_HTML)
    (root / "assets" / "app-1a2b3c4d.js").write_text(ASSET_JS)
    (root / "favicon.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>\n')
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)  # workers run as nobody under root
    return root


@pytest.fixture(scope="package")
def replicas() -> Iterator[list[Server]]:
    started: list[Server] = []
    try:
        for i in range(3):
            started.append(start_upstream(f"replica-{i + 1}"))
        yield started
    finally:
        for server in started:
            server.stop()


@pytest.fixture(scope="package")
def site(replicas: list[Server], static_root: Path) -> Iterator[Server]:
    """nginx with the default settings in front of three replicas."""
    server = start_nginx(addresses(replicas), static_root)
    yield server
    server.stop()


@pytest.fixture(scope="package")
def single_site(replicas: list[Server], static_root: Path) -> Iterator[Server]:
    """nginx in front of the first replica only, so a test can talk to that replica directly."""
    server = start_nginx(addresses(replicas[:1]), static_root)
    yield server
    server.stop()


@pytest.fixture(scope="package")
def strict_site(replicas: list[Server], static_root: Path) -> Iterator[Server]:
    """nginx with small limits: 16 KiB bodies, 1 request a minute plus a burst of 2."""
    server = start_nginx(
        addresses(replicas[:1]), static_root, max_body_size="16k", rate_limit="1r/m", rate_burst=2
    )
    yield server
    server.stop()
