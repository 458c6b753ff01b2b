"""Run the real nginx with the project's rendered config, on a free port, for tests.

The config comes from nginx/render.py, the same renderer the local run and the docker image
use, so the tests exercise the site people get.
"""

from __future__ import annotations

import functools
import importlib.util
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

from tests.support.servers import ROOT, Server, free_port, http_ok, start


@functools.cache
def render_module() -> ModuleType:
    # nginx/ holds config, not a Python package: load its renderer by path. Registered like an
    # imported module, which its dataclasses need to resolve their annotations.
    spec = importlib.util.spec_from_file_location("nginx_render", ROOT / "nginx" / "render.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def nginx_exe() -> str:
    found = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(found).exists():
        raise RuntimeError("nginx is not installed (run ./stack test, which installs it)")
    return found


def make_prefix() -> Path:
    prefix = Path(tempfile.mkdtemp(prefix="nginx-"))
    prefix.chmod(0o755)  # nginx workers run as nobody when the tests run as root
    return prefix


def write_config(
    prefix: Path,
    port: int,
    conversation: list[str],
    static_root: Path | None = None,
    **options: Any,
) -> Path:
    """Render nginx.conf into `prefix` for 127.0.0.1:`port` in front of `conversation`."""
    module = render_module()
    static = static_root or ROOT / "chatui" / "dist"
    conf = prefix / "nginx.conf"
    options.setdefault("user", module.workers_user(str(static), str(prefix)))
    conf.write_text(
        module.render(
            listen=f"127.0.0.1:{port}",
            static_root=str(static),
            conversation=conversation,
            prefix=str(prefix),
            **options,
        )
    )
    return conf


def config_test(conf: Path) -> subprocess.CompletedProcess[str]:
    """`nginx -t` on a rendered file: exit 0 when nginx accepts it."""
    cmd = [nginx_exe(), "-t", "-p", str(conf.parent), "-c", str(conf), "-e", "stderr"]
    return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=30)


def start_nginx(conversation: list[str], static_root: Path | None = None, **options: Any) -> Server:
    """A real nginx on a free port; ready when its own /healthz answers."""
    port = free_port()
    prefix = make_prefix()
    conf = write_config(prefix, port, conversation, static_root, **options)
    cmd = [nginx_exe(), "-p", str(prefix), "-c", str(conf), "-e", "stderr"]
    return start("nginx", cmd, port, http_ok(f"http://127.0.0.1:{port}/healthz"))
