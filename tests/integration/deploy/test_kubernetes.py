"""The Kubernetes manifests' settings and probes, asked of the real services.

No cluster runs here, so the pods are stood in for by real processes on this machine:
redis-server, assistant, conversation and nginx, each started with the environment its pod
would get from the rendered ConfigMaps (the vLLM variant, with the fake OpenAI-compatible
model standing in for the vLLM Service). Service addresses in those settings are pointed at
the local processes. Then every probe in the manifests is sent as the kubelet would (its
path, its port, its timeout), and the probes are shown to tell apart what they must: a pod
whose dependencies are down is unready but alive, and a loading model holds the startup
probe, not the liveness probe.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests.support.conversation import create_session, send
from tests.support.fake_control import closed_port, start_hf_upstream
from tests.support.nginx import start_nginx
from tests.support.readiness import Gate, start_loading_assistant
from tests.support.servers import (
    Server,
    running,
    start_assistant,
    start_conversation,
    start_fake_upstream,
    start_redis,
    wait_until,
)
from tests.unit.deploy.kubernetes_objects import Object, container_of, objects, plain_env

PROBES = ("startupProbe", "livenessProbe", "readinessProbe")


@dataclass
class StandIn:
    """The variant's objects and a local process for each workload."""

    objs: list[Object]
    servers: dict[str, Server]


def local(url: str, services: dict[str, Server]) -> str:
    """A URL naming a Service (`http://assistant:8001/...`) pointed at its local stand-in."""
    parts = urlsplit(url)
    assert parts.hostname in services, f"no stand-in for the Service in {url}"
    netloc = f"127.0.0.1:{services[parts.hostname].port}"
    return urlunsplit(parts._replace(netloc=netloc))


def pod_env(objs: list[Object], workload: str, services: dict[str, Server]) -> dict[str, str]:
    env = plain_env(objs, workload)
    return {k: local(v, services) if k.endswith("_URL") else v for k, v in env.items()}


def probe(server: Server, spec: dict[str, Any]) -> int:
    """The kubelet's HTTP probe: GET the path on the pod's port, within timeoutSeconds
    (default 1 s); any status from 200 to 399 is a success."""
    url = f"http://127.0.0.1:{server.port}{spec['httpGet']['path']}"
    try:
        return httpx.get(url, timeout=spec.get("timeoutSeconds", 1)).status_code
    except httpx.HTTPError:
        return 0


def succeeds(status: int) -> bool:
    return 200 <= status < 400


@pytest.fixture(scope="module")
def stand_in(static_root: Path) -> Iterator[StandIn]:
    objs = objects("vllm")
    with (
        running(start_redis()) as redis,
        running(start_fake_upstream()) as vllm,
    ):
        services = {"redis": redis, "vllm": vllm}
        with running(start_assistant(pod_env(objs, "assistant", services))) as assistant:
            services["assistant"] = assistant
            env = pod_env(objs, "conversation", services)
            with running(start_conversation(env)) as conversation:
                address = f"127.0.0.1:{conversation.port}"
                with running(start_nginx([address], static_root)) as nginx:
                    servers = {"nginx": nginx, "conversation": conversation, **services}
                    yield StandIn(objs, servers)


def test_the_rendered_settings_are_what_the_stand_ins_run_with(stand_in: StandIn) -> None:
    env = stand_in.servers["assistant"].env
    assert env["ASSISTANT_PROVIDER"] == "openai"
    assert env["OPENAI_BASE_URL"] == f"{stand_in.servers['vllm'].url}/v1"
    assert (
        stand_in.servers["conversation"].env["ASSISTANT_URL"] == stand_in.servers["assistant"].url
    )


@pytest.mark.parametrize("workload", ["nginx", "conversation", "assistant"])
def test_every_probe_passes_when_everything_is_up(stand_in: StandIn, workload: str) -> None:
    container = container_of(stand_in.objs, workload)
    server = stand_in.servers[workload]
    statuses = {kind: probe(server, container[kind]) for kind in PROBES if kind in container}
    assert {"livenessProbe", "readinessProbe"} <= set(statuses)
    assert all(succeeds(s) for s in statuses.values()), statuses


def test_a_chat_turn_goes_through_with_the_rendered_settings(stand_in: StandIn) -> None:
    session = create_session(stand_in.servers["nginx"])
    events = send(session, "hello from the cluster")
    assert events[-1].event == "done", [e.event for e in events]


def test_conversation_without_redis_or_assistant_is_unready_but_alive() -> None:
    """Liveness must not follow the dependencies: an outage behind conversation would
    otherwise restart every replica at once."""
    objs = objects("vllm")
    container = container_of(objs, "conversation")
    env = plain_env(objs, "conversation") | {
        "REDIS_URL": f"redis://127.0.0.1:{closed_port()}/0",
        "ASSISTANT_URL": f"http://127.0.0.1:{closed_port()}",
    }
    with running(start_conversation(env)) as conversation:
        assert succeeds(probe(conversation, container["livenessProbe"]))
        assert probe(conversation, container["readinessProbe"]) == 503


def test_nginx_stays_alive_and_ready_when_conversation_is_down(static_root: Path) -> None:
    container = container_of(objects("default"), "nginx")
    with running(start_nginx([f"127.0.0.1:{closed_port()}"], static_root)) as nginx:
        assert succeeds(probe(nginx, container["livenessProbe"]))
        assert succeeds(probe(nginx, container["readinessProbe"]))
        # Behind it, the API answers nginx's own JSON 503, which the UI shows.
        assert httpx.get(f"{nginx.url}/api/health", timeout=10).status_code == 503


def test_a_loading_model_holds_the_startup_probe_not_the_liveness_probe() -> None:
    container = container_of(objects("default"), "assistant")
    gate = Gate()
    try:
        with (
            running(start_hf_upstream()) as hf,
            running(start_loading_assistant(gate, hf)) as assistant,
        ):
            wait_until(gate.held.is_set, 10, "assistant's request for its chat template")
            assert probe(assistant, container["startupProbe"]) == 503
            assert succeeds(probe(assistant, container["livenessProbe"]))
            gate.open()
            wait_until(
                lambda: succeeds(probe(assistant, container["startupProbe"])),
                30,
                "assistant's startup probe once its model is loaded",
            )
            assert succeeds(probe(assistant, container["readinessProbe"]))
    finally:
        gate.close()
