"""docker-compose.yml and its override files, checked without a Docker engine.

Each file is validated against the Compose specification's JSON schema (the copy that
check-jsonschema ships), then cross-checked against .env.example, the Dockerfiles and the
rules of issue 6: healthchecks everywhere, only nginx published, redis and assistant on an
internal network only, start order by health.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.support.nginx import render_module
from tests.support.servers import ROOT

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
    assert "--appendonly" in redis["command"]
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
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
def test_dockerfiles_build_slim_non_root_images_with_cached_dependencies(service: str) -> None:
    build = load(BASE)["services"][service]["build"]
    assert build["context"] == "."
    dockerfile = ROOT / build["dockerfile"]
    text = dockerfile.read_text()
    lines = [line.strip() for line in text.splitlines()]
    images = re.findall(r"^ARG \w+_IMAGE=(\S+)$", text, re.MULTILINE)
    assert images and all(re.search(r"slim|alpine", image) for image in images), images
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0", "0:0"), users
    # Dependencies are installed from files that change rarely, before the sources come in.
    first_source = next(
        i for i, line in enumerate(lines) if re.match(r"COPY (common|chatui/ )", line)
    )
    install = next(i for i, line in enumerate(lines) if re.search(r"pip install|npm ci", line))
    assert install < first_source


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".env", ".venv", ".git", ".run", "chatui/node_modules", "chatui/dist"} <= ignored
