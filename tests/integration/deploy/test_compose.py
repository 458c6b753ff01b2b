"""docker-compose.yml, its override files and the Dockerfiles: checked as files, then built
and run for real.

The file checks need no Docker engine: each compose file against the Compose
specification's JSON schema (the copy check-jsonschema ships), cross-checked against
.env.example and the Dockerfiles.

The `docker` tests do what a user does, against a real dockerd (started here when none runs;
a machine that cannot run one fails them): `docker compose up --build` with .env.example,
chat with the local model through the published port, restart Redis, scale conversation,
bring each provider override up against the tests' fake model servers, and tear it all
down. Base images that cannot be pulled are stand-ins built from Debian (tests/README.md).
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml
from websockets.sync.client import connect

from tests.support.docker import (
    ComposeProject,
    compose_project,
    docker,
    ensure_base_images,
    ensure_engine,
    free_public_port,
    image_size,
)
from tests.support.nginx import nginx_exe, render_module
from tests.support.servers import ROOT, wait_until
from tests.support.sse import Event, iter_events

BASE = ROOT / "docker-compose.yml"
OVERRIDES = sorted(ROOT.glob("compose.*.yml"))
ALL_FILES = [BASE, *OVERRIDES]
SECRET = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)$")
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?err}, $NAME; $$ is a literal dollar.
VARIABLE = re.compile(
    r"(?<!\$)\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|([A-Za-z_]\w*))"
)


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def compose_schema() -> dict[str, Any]:
    text = (
        resources.files("check_jsonschema.builtin_schemas.vendor")
        .joinpath("compose-spec.json")
        .read_text()
    )
    schema: dict[str, Any] = json.loads(text)
    return schema


def validate(document: dict[str, Any]) -> list[str]:
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line)
        if match:
            values[match.group(1)] = match.group(2)
    return values


def merged() -> dict[str, Any]:
    """What `docker compose -f docker-compose.yml -f <every override>` would add up to, as far
    as these checks need: services and top-level maps merged key by key."""
    result = load(BASE)
    for path in OVERRIDES:
        for section, entries in load(path).items():
            target = result.setdefault(section, {})
            for name, value in entries.items():
                if section == "services" and name in target:
                    target[name] = {**target[name], **value}
                else:
                    target[name] = value
    return result


# --- the schema -------------------------------------------------------------------------


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.name)
def test_compose_file_matches_the_compose_schema(path: Path) -> None:
    assert validate(load(path)) == []


def test_the_schema_check_can_fail() -> None:
    broken = load(BASE)
    broken["services"]["nginx"]["healthcheck"]["interval"] = ["5s"]
    broken["services"]["redis"]["restart_policy"] = "always"
    errors = validate(broken)
    assert any("interval" in e for e in errors), errors
    assert any("restart_policy" in e for e in errors), errors


def test_override_files_exist_for_each_provider() -> None:
    assert {p.name for p in OVERRIDES} == {
        "compose.openai.yml",
        "compose.huggingface.yml",
        "compose.vllm.yml",
    }


# --- cross-checks -----------------------------------------------------------------------


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.name)
def test_every_variable_is_documented_with_the_same_default(path: Path) -> None:
    documented = env_example()
    used = list(VARIABLE.finditer(path.read_text()))
    if path == BASE:
        assert used, "expected docker-compose.yml to take settings from .env"
    for match in used:
        name = match.group(1) or match.group(4)
        assert name in documented, f"{path.name} uses ${name}, which .env.example does not list"
        if match.group(2) in (":-", "-") and match.group(3):
            assert documented[name] == match.group(3), (
                f"{name}: {path.name} defaults to {match.group(3)!r}, "
                f".env.example says {documented[name]!r}"
            )


def test_nginx_build_args_are_the_renderer_settings() -> None:
    args = load(BASE)["services"]["nginx"]["build"]["args"]
    assert set(args) == set(render_module().DEFAULTS)
    dockerfile = (ROOT / "nginx" / "Dockerfile").read_text()
    for name in args:
        assert re.search(rf"^ARG {name}=", dockerfile, re.MULTILINE), name


def test_every_service_has_a_healthcheck_and_a_restart_policy() -> None:
    for name, service in merged()["services"].items():
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no healthcheck"
        assert service.get("restart") in ("unless-stopped", "always"), name


def test_only_nginx_publishes_a_port() -> None:
    services = merged()["services"]
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"nginx"}
    assert services["nginx"]["ports"] == ["${HTTP_PORT:-81}:8080"]


def test_redis_and_assistant_live_on_the_internal_network_only() -> None:
    compose = load(BASE)
    networks = compose["networks"]
    for name in ("redis", "assistant"):
        for network in compose["services"][name]["networks"]:
            assert networks[network].get("internal") is True, (name, network)
    # conversation bridges the two; nginx sees only conversation.
    assert compose["services"]["conversation"]["networks"] == ["backend", "frontend"]
    assert compose["services"]["nginx"]["networks"] == ["frontend"]
    assert networks["frontend"].get("internal") is not True


def test_services_start_in_order_of_health() -> None:
    services = merged()["services"]
    expected = {
        "conversation": {"redis", "assistant"},
        "nginx": {"conversation"},
        "assistant": {"vllm"},  # with compose.vllm.yml
    }
    for name, needs in expected.items():
        depends = services[name]["depends_on"]
        assert set(depends) == needs, name
        assert all(d["condition"] == "service_healthy" for d in depends.values()), name


def test_redis_is_the_official_image_with_aof_on_a_named_volume() -> None:
    compose = load(BASE)
    redis = compose["services"]["redis"]
    assert redis["image"].startswith("redis:")
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--maxmemory") + 1] == "${REDIS_MAXMEMORY:-256mb}"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert redis["user"] == "redis" and redis["cap_drop"] == ["ALL"]
    volume, mount = redis["volumes"][0].split(":")
    assert mount == "/data" and volume in compose["volumes"]


def test_conversation_scales_and_never_sees_provider_secrets() -> None:
    conversation = load(BASE)["services"]["conversation"]
    assert conversation["deploy"]["replicas"] == "${CONVERSATION_REPLICAS:-2}"
    assert "container_name" not in conversation  # a fixed name would forbid --scale
    environment = conversation["environment"]
    assert environment["REDIS_URL"] == "redis://redis:6379/0"
    assert environment["ASSISTANT_URL"] == "http://assistant:8001"
    # The shared secret between conversation and assistant is the one key it needs.
    secrets = {
        name for name in env_example() if SECRET.search(name) and name != "ASSISTANT_API_KEY"
    }
    secrets |= {"OPENAI_API_KEY", "HF_TOKEN"}
    for name in secrets:
        assert environment.get(name) == "", f"conversation would receive {name} from .env"


def test_providers_reach_out_only_through_an_override() -> None:
    for path in OVERRIDES:
        compose = load(path)
        assistant = compose["services"]["assistant"]
        assert assistant["environment"]["ASSISTANT_PROVIDER"] in ("openai", "huggingface")
        for network in compose.get("networks", {}).values():
            assert "internal" not in network
    vllm = load(ROOT / "compose.vllm.yml")["services"]["assistant"]["environment"]
    assert vllm["OPENAI_BASE_URL"] == "http://vllm:8000/v1"


# --- the Dockerfiles --------------------------------------------------------------------


@pytest.mark.parametrize("service", ["assistant", "conversation", "nginx"])
def test_dockerfiles_build_non_root_images_with_cached_dependencies(service: str) -> None:
    build = load(BASE)["services"][service]["build"]
    assert build["context"] == "."
    dockerfile = ROOT / build["dockerfile"]
    text = dockerfile.read_text()
    lines = [line.strip() for line in text.splitlines()]
    # Nothing from a registry but the base images: no `# syntax=` frontend image (BuildKit's
    # built-in frontend knows RUN --mount), and official bookworm images only, so a machine
    # without Docker Hub can stand them in from Debian's mirror.
    assert "syntax=" not in text
    images = re.findall(r"^ARG \w+_IMAGE=(\S+)$", text, re.MULTILINE)
    assert images and all("bookworm" in image for image in images), images
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0", "0:0"), users
    # Dependencies are installed from files that change rarely, before the sources come in,
    # with the package manager's cache kept between builds.
    first_source = next(
        i for i, line in enumerate(lines) if re.match(r"COPY (common|chatui/ )", line)
    )
    install = next(
        i
        for i, line in enumerate(lines)
        if re.search(r"pip install|npm ci", line) and not line.startswith("#")
    )
    assert install < first_source
    assert "--mount=type=cache" in lines[install - 1] + lines[install]


@pytest.mark.parametrize("service", ["assistant", "conversation"])
def test_python_images_install_their_locked_requirements(service: str) -> None:
    # Exact versions with hashes (scripts/lock.sh), and nothing pip would resolve by itself.
    text = (ROOT / service / "Dockerfile").read_text()
    assert f"COPY requirements/{service}.txt" in text
    assert f"pip install --require-hashes --no-deps -r {service}.txt" in text
    assert "pyproject.toml" not in text


@pytest.mark.parametrize("service", ["assistant", "conversation"])
def test_python_images_serve_with_gunicorn_and_uvicorn_workers(service: str) -> None:
    cmd = (ROOT / service / "Dockerfile").read_text().split("\nCMD ", 1)[1]
    assert "exec gunicorn" in cmd and "--keep-alive 75" in cmd
    assert "${WEB_CONCURRENCY:-$(nproc)}" in cmd
    worker = re.search(r"--worker-class (\S+)", cmd)
    assert worker is not None
    module, _, name = worker.group(1).rpartition(".")
    options = getattr(importlib.import_module(module), name).CONFIG_KWARGS
    assert options["access_log"] is False and options["server_header"] is False
    if service == "conversation":
        assert options["ws"] == "conversation.ws_server:WebSocketProtocol"
        assert options["ws_per_message_deflate"] is False


def test_the_llama_build_flags_are_shared_with_the_local_install() -> None:
    flags = (ROOT / "assistant" / "llama-cpp-cmake-args").read_text().split()
    assert "-DLLAVA_BUILD=OFF" in flags and "-DLLAMA_BUILD_EXAMPLES=OFF" in flags
    assert "llama-cpp-cmake-args" in (ROOT / "assistant" / "Dockerfile").read_text()
    assert "assistant/llama-cpp-cmake-args" in (ROOT / "scripts" / "install.sh").read_text()


def test_nginx_in_docker_looks_conversation_up_per_request() -> None:
    module = render_module()
    prefix = Path(tempfile.mkdtemp(prefix="nginx-docker-"))
    common = {"listen": "8080", "static_root": str(prefix), "prefix": str(prefix), "user": None}
    docker_conf = module.render(conversation=["conversation:8000"], resolver="127.0.0.11", **common)
    assert "upstream conversation" not in docker_conf
    assert "resolver 127.0.0.11 valid=5s ipv6=off;" in docker_conf
    assert "set $conversation conversation:8000;" in docker_conf
    assert "proxy_pass http://$conversation;" in docker_conf
    (prefix / "nginx.conf").write_text(docker_conf)
    checked = subprocess.run(
        [nginx_exe(), "-t", "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stderr
    # The local run keeps its upstream block with its pool of kept-alive connections.
    local = module.render(conversation=["127.0.0.1:8000", "127.0.0.1:8001"], **common)
    assert "upstream conversation {" in local and "keepalive 64;" in local
    assert "resolver" not in local and "proxy_pass http://conversation;" in local
    with pytest.raises(ValueError, match="one name"):
        module.render(conversation=["a:1", "b:1"], resolver="127.0.0.11", **common)


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".env", ".venv", ".git", ".run", "chatui/node_modules", "chatui/dist"} <= ignored


# --- built and run for real (marker `docker`) --------------------------------------------

PROJECT = "chatstack-test"
FAKES = ROOT / "tests" / "compose.fakes.yml"
# What a person sets in .env to use each provider; here pointed at the fakes.
PROVIDERS: dict[str, tuple[str, dict[str, str], str]] = {
    "openai": (
        "compose.openai.yml",
        {
            "OPENAI_BASE_URL": "http://fake-openai:9000/v1",
            "OPENAI_API_KEY": "test-key",
            "OPENAI_MODEL": "fake-model",
        },
        "Echo: hello",
    ),
    "huggingface": (
        "compose.huggingface.yml",
        {
            "HF_BASE_URL": "http://fake-hf:9001",
            "HF_HUB_URL": "http://fake-hf:9001",
            "HF_TOKEN": "hf_test_token",
        },
        "Hello from text generation.",
    ),
}


@dataclass
class Run:
    """The test project and what the tests learn on the way."""

    project: ComposeProject
    port: int
    setup_seconds: float
    session: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def env_file(port: int, **settings: str) -> Path:
    """.env.example as a person copies it to .env, with a free port and `settings`."""
    lines = []
    for line in (ROOT / ".env.example").read_text().splitlines():
        name = line.partition("=")[0]
        if name == "HTTP_PORT":
            line = f"HTTP_PORT={port}"
        elif name in settings:
            line = f"{name}={settings.pop(name)}"
        lines.append(line)
    lines += [f"{name}={value}" for name, value in settings.items()]
    path = Path(tempfile.mkdtemp(prefix="compose-env-")) / ".env"
    path.write_text("\n".join(lines) + "\n")
    return path


def files_brought_up() -> list[Path]:
    return [BASE, *(ROOT / override for override, _, _ in PROVIDERS.values()), FAKES]


def project_with(files: list[Path], port: int, **settings: str) -> ComposeProject:
    path = env_file(port, **settings)
    env = {"ENV_FILE": str(path), "FAKES_IMAGE": f"{PROJECT}-conversation"}
    return ComposeProject(PROJECT, files, env, env_file=path)


@pytest.fixture(scope="module")
def report(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Figures a person reads (README quotes them): shown in pytest's output whatever -s
    says, and kept in test-artifacts/compose.txt."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    record = ROOT / "test-artifacts" / "compose.txt"
    record.parent.mkdir(exist_ok=True)
    record.write_text("")

    def write(line: str) -> None:
        if reporter is not None:
            reporter.write_line(f"[compose] {line}")
        with record.open("a") as out:
            out.write(line + "\n")

    return write


@pytest.fixture(scope="module")
def run(report: Callable[[str], None]) -> Iterator[Run]:
    ensure_engine()
    standins = [name for name, how in ensure_base_images().items() if how == "stand-in"]
    started = time.monotonic()
    project_with([BASE], 0).run("build", timeout=3600)
    built = time.monotonic() - started
    # Chosen after the build, which may take many minutes on a busy machine: the port is
    # only known free for as long as nobody else takes it.
    port = free_public_port()
    project = project_with([BASE], port)
    # Brought down with every file any test brought up, or the overrides' egress network
    # would stay (compose only knows the networks of the files it is given).
    everything = project_with(files_brought_up(), port)
    with compose_project(everything):
        started = time.monotonic()
        project.up()
        result = Run(project, port, time.monotonic() - started)
        report(f"base images standing in (tests/README.md): {', '.join(standins) or 'none'}")
        report(f"docker compose build: {built:.0f} s")
        report(f"docker compose up --build --wait, images built: {result.setup_seconds:.0f} s")
        yield result


def services(project: ComposeProject) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for container in project.containers():
        found.setdefault(container["Service"], []).append(container)
    return found


def all_healthy(project: ComposeProject) -> bool:
    return all(c["State"] == "running" and c["Health"] == "healthy" for c in project.containers())


def sse_turn(client: httpx.Client, session: dict[str, Any], content: str) -> list[Event]:
    url = f"/api/sessions/{session['session_id']}/messages"
    headers = {"Authorization": f"Bearer {session['token']}"}
    with client.stream("POST", url, json={"content": content}, headers=headers) as response:
        assert response.status_code == 200, response.read()
        return list(iter_events(response.iter_lines()))


def history(url: str, session: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.get(
        f"{url}/api/sessions/{session['session_id']}",
        headers={"Authorization": f"Bearer {session['token']}", **headers},
        timeout=30,
    )


@pytest.mark.docker
def test_every_service_is_up_and_healthy_and_only_nginx_is_published(run: Run) -> None:
    found = services(run.project)
    assert {name: len(cs) for name, cs in found.items()} == {
        "redis": 1,
        "assistant": 1,
        "conversation": 2,  # CONVERSATION_REPLICAS in .env.example
        "nginx": 1,
    }
    assert all_healthy(run.project)
    published = {
        c["Service"]
        for cs in found.values()
        for c in cs
        if any(p.get("PublishedPort") for p in c["Publishers"])
    }
    assert published == {"nginx"}


@pytest.mark.docker
def test_images_run_as_non_root_without_capabilities(
    run: Run, report: Callable[[str], None]
) -> None:
    for container in run.project.containers():
        inspected = run.project.inspect(container["ID"])
        assert inspected["Config"]["User"] not in ("", "root", "0"), container["Service"]
        assert inspected["HostConfig"]["CapDrop"] == ["ALL"], container["Service"]
        assert "no-new-privileges:true" in inspected["HostConfig"]["SecurityOpt"]
        status = docker("exec", container["ID"], "cat", "/proc/1/status").stdout
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        assert fields["Uid"].split()[0] != "0", container["Service"]
        assert int(fields["CapEff"], 16) == 0, container["Service"]
    sizes = [
        f"{name} {image_size(f'{PROJECT}-{name}') / 1e6:.0f} MB"
        f" ({(image_size(f'{PROJECT}-{name}') - image_size(final_base(name))) / 1e6:.0f} MB"
        f" over {final_base(name)})"
        for name in ("assistant", "conversation", "nginx")
    ]
    report("image sizes: " + ", ".join(sizes))


def final_base(service: str) -> str:
    """The image the Dockerfile's last stage starts from."""
    text = (ROOT / service / "Dockerfile").read_text()
    last = re.findall(r"^FROM \$\{(\w+)\}", text, re.MULTILINE)[-1]
    match = re.search(rf"^ARG {last}=(\S+)$", text, re.MULTILINE)
    assert match is not None
    return match.group(1)


@pytest.mark.docker
def test_chat_with_the_local_model_through_the_published_port(run: Run) -> None:
    with httpx.Client(base_url=run.url, timeout=120) as client:
        page = client.get("/")
        assert page.status_code == 200 and '<div id="root">' in page.text
        created = client.post("/api/sessions", json={})
        assert created.status_code == 201, created.text
        session = created.json()
        events = sse_turn(client, session, "Say hello in one short sentence.")
    names = [e.event for e in events]
    assert names[:2] == ["user", "start"] and names[-1] == "done", names
    streamed = "".join(e.json()["text"] for e in events if e.event == "delta")
    assert streamed.strip() and streamed == events[-1].json()["content"]
    assert names.count("delta") > 1  # streamed, not sent in one piece

    # A reload: the page asks for the session again and gets the whole chat.
    restored = history(run.url, session)
    assert restored.status_code == 200
    assert [(m["role"], m["content"]) for m in restored.json()["messages"]] == [
        ("user", "Say hello in one short sentence."),
        ("assistant", streamed),
    ]

    # A WebSocket turn in the same session.
    ws_url = f"ws://127.0.0.1:{run.port}/api/sessions/{session['session_id']}/ws"
    with connect(f"{ws_url}?token={session['token']}") as ws:
        ws.send(json.dumps({"type": "message", "content": "And goodbye?"}))
        frames: list[dict[str, Any]] = []
        while not frames or frames[-1]["event"] != "done":
            frames.append(json.loads(ws.recv(timeout=120)))
    assert [f["event"] for f in frames][:2] == ["user", "start"]
    assert frames[-1]["data"]["content"].strip()
    assert len(history(run.url, session).json()["messages"]) == 4
    run.session = session


@pytest.mark.docker
def test_scaled_replicas_serve_one_session_without_restarting_nginx(run: Run) -> None:
    assert run.session, "needs the chat of the test before"
    nginx_before = run.project.inspect(services(run.project)["nginx"][0]["ID"])
    run.project.up("--scale", "conversation=3", "--no-recreate")
    replicas = {
        address(run.project, c["ID"]): c["Name"] for c in services(run.project)["conversation"]
    }
    assert len(replicas) == 3
    nginx_after = run.project.inspect(services(run.project)["nginx"][0]["ID"])
    assert nginx_after["Id"] == nginx_before["Id"]
    assert nginx_after["State"]["StartedAt"] == nginx_before["State"]["StartedAt"]

    # Until every replica has served this session (nginx's DNS answers live 5 s).
    served: set[str] = set()

    def every_replica_served() -> bool:
        ids = [uuid.uuid4().hex for _ in range(6)]
        for request_id in ids:
            response = history(run.url, run.session, **{"X-Request-ID": request_id})
            assert response.status_code == 200, response.text
        served.update(upstreams(run.project, ids).values())
        return served >= set(replicas)

    wait_until(every_replica_served, 60, "requests served by all three replicas")
    assert served == set(replicas)


def address(project: ComposeProject, container: str) -> str:
    networks = project.inspect(container)["NetworkSettings"]["Networks"]
    return str(networks[f"{PROJECT}_frontend"]["IPAddress"])


def upstreams(project: ComposeProject, request_ids: list[str]) -> dict[str, str]:
    """Request id -> the replica address that answered it, from nginx's JSON access log."""
    found: dict[str, str] = {}
    for line in project.logs("nginx").splitlines():
        if not line.startswith("{"):
            continue
        entry = json.loads(line)
        if entry["request_id"] in request_ids:
            # Several addresses when nginx tried more than one; the last answered.
            found[entry["request_id"]] = entry["upstream"].split(",")[-1].strip().rsplit(":", 1)[0]
    return found


@pytest.mark.docker
def test_redis_restart_keeps_the_chat_in_its_append_only_file(
    run: Run, report: Callable[[str], None]
) -> None:
    assert run.session, "needs the chat of the test before"
    config = run.project.run(
        "exec", "-T", "redis", "redis-cli", "config", "get", "maxmemory*"
    ).stdout.split()
    assert config[config.index("maxmemory") + 1] == str(256 * 1024 * 1024)
    assert config[config.index("maxmemory-policy") + 1] == "noeviction"

    run.project.run("restart", "redis")
    wait_until(lambda: all_healthy(run.project), 60, "the stack after redis restarted")
    # Every replica's worker may hold pooled connections to the Redis that went away: a
    # request meeting one is answered 503 (and the connection replaced), as a client retrying
    # sees. Counted and reported, then every worker must answer with the whole chat.
    refused = 0

    def chat_is_back() -> bool:
        nonlocal refused
        answers = [history(run.url, run.session) for _ in range(12)]
        refused += sum(a.status_code == 503 for a in answers)
        return all(a.status_code == 200 for a in answers)

    wait_until(chat_is_back, 60, "the chat from every replica")
    report(f"requests answered 503 right after the redis restart: {refused}")
    messages = history(run.url, run.session).json()["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]


@pytest.mark.docker
@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_each_provider_override_runs_against_the_fake_model(run: Run, provider: str) -> None:
    override, settings, reply = PROVIDERS[provider]
    project = project_with([BASE, ROOT / override, FAKES], run.port, **settings)
    project.up()
    assert all_healthy(project)
    with httpx.Client(base_url=run.url, timeout=60) as client:
        created = client.post("/api/sessions", json={})
        assert created.status_code == 201, created.text
        events = sse_turn(client, created.json(), "hello")
    assert events[-1].event == "done", [e.event for e in events]
    assert events[-1].json()["content"] == reply
    inspected = project.inspect(services(project)["assistant"][0]["ID"])
    assert f"ASSISTANT_PROVIDER={provider}" in inspected["Config"]["Env"]


@pytest.mark.docker
def test_down_leaves_no_container_network_or_volume(
    run: Run, report: Callable[[str], None]
) -> None:
    started = time.monotonic()
    everything = project_with(files_brought_up(), run.port)
    everything.down()
    assert everything.leftovers() == {}
    report(f"docker compose down -v: {time.monotonic() - started:.0f} s")
