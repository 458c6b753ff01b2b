"""One assistant serving a catalogue (MODELS_FILE): three fake OpenAI-compatible upstreams
and the real embedded model at once.

- alpha: `max_concurrency = 2`, `retries = 0`, a long first-token timeout; discovery with
  `allow_only_listed`; the upstream the tests stall.
- beta: the default model's upstream.
- gamma: discovery of everything it offers, refreshed every REFRESH seconds.
- local: SmolLM2, loading in the background while the others already serve.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.assistant.conftest import FAST_FAILURES, assistant_with
from tests.integration.assistant.helpers import USER, chat, error_of
from tests.support.fake_control import FakeControl
from tests.support.servers import Server, start_fake_upstream, wait_until

pytestmark = pytest.mark.model

REFRESH = 0.3  # MODELS_REFRESH_SECONDS here: seconds between background checks
PACE_MS = 10  # beta's pace while its token gaps are measured
GAP_TOKENS = 40

CATALOGUE = """
default = "beta-1"

[[providers]]
name = "local"
kind = "local"
timeout = 120

[[providers]]
name = "alpha"
kind = "openai"
base_url = "{alpha}/v1"
api_key_env = "ALPHA_KEY"
discover = true
allow_only_listed = true
max_concurrency = 2
timeout = 60
retries = 0

[[providers]]
name = "beta"
kind = "openai"
base_url = "{beta}/v1"
api_key_env = "BETA_KEY"

[[providers]]
name = "gamma"
kind = "openai"
base_url = "{gamma}/v1"
discover = true

[[models]]
id = "smollm2"
provider = "local"
display_name = "SmolLM2 135M (local)"
context_length = 2048

[[models]]
id = "alpha-1"
provider = "alpha"
display_name = "Alpha One"
context_length = 8192

[[models]]
id = "beta-1"
provider = "beta"
display_name = "Beta One"
"""


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, Server]]:
    servers = {
        "alpha": start_fake_upstream(FAKE_MODELS="alpha-1,alpha-unlisted"),
        "beta": start_fake_upstream(FAKE_MODELS="beta-1"),
        "gamma": start_fake_upstream(FAKE_MODELS="gamma-1"),
    }
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture(scope="module")
def served(fakes: dict[str, Server], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    path = tmp_path_factory.mktemp("catalogue") / "models.toml"
    path.write_text(CATALOGUE.format(**{name: s.url for name, s in fakes.items()}))
    env = {
        **FAST_FAILURES,
        "MODELS_FILE": str(path),
        "MODELS_REFRESH_SECONDS": str(REFRESH),
        "MODELS_CHECK_TIMEOUT": "1",
        "ALPHA_KEY": "alpha-secret",
        "BETA_KEY": "beta-secret",
        "LOCAL_QUEUE_SIZE": "0",
    }
    yield from assistant_with(env, timeout=120)


def cards(server: Server) -> dict[str, dict[str, Any]]:
    listing = httpx.get(f"{server.url}/v1/models").json()
    assert listing["object"] == "list"
    return {card["id"]: card for card in listing["data"]}


def until_ready(server: Server, model: str, ready: bool = True, timeout: float = 60) -> None:
    wait_until(
        lambda: cards(server).get(model, {}).get("ready") is ready,
        timeout,
        f"{model} {'ready' if ready else 'not ready'}",
    )


@pytest.fixture
def controls(fakes: dict[str, Server], served: Server) -> dict[str, FakeControl]:
    """The fakes as each test starts: nothing scripted or stalled, gamma offering gamma-1
    (and assistant having seen it)."""
    found = {name: FakeControl(server) for name, server in fakes.items()}
    for control in found.values():
        control.reset()
    found["gamma"].offer({"id": "gamma-1", "max_model_len": 4096})
    # Seen as offered now: a refresh from before the reset may have listed it without its
    # context length.
    wait_until(
        lambda: cards(served).get("gamma-1", {}).get("context_length") == 4096,
        30,
        "gamma-1 rediscovered",
    )
    until_ready(served, "gamma-1", timeout=10)
    return found


# --- listing and routing -------------------------------------------------------------------


def test_every_model_is_listed_with_its_provider_and_readiness(
    served: Server, controls: dict[str, FakeControl]
) -> None:
    until_ready(served, "smollm2", timeout=120)
    until_ready(served, "gamma-1")
    listed = cards(served)
    assert list(listed) == ["smollm2", "alpha-1", "beta-1", "gamma-1"]
    assert listed["alpha-1"] == {
        "id": "alpha-1",
        "object": "model",
        "created": listed["alpha-1"]["created"],
        "owned_by": "alpha",
        "provider": "alpha",
        "display_name": "Alpha One",
        "context_length": 8192,
        "ready": True,
        "default": False,
    }
    assert [m for m, card in listed.items() if card["default"]] == ["beta-1"]
    assert listed["smollm2"]["provider"] == "local"
    assert listed["smollm2"]["display_name"] == "SmolLM2 135M (local)"
    # Discovered: its id as its name, the context length its upstream reported.
    assert listed["gamma-1"]["display_name"] == "gamma-1"
    assert listed["gamma-1"]["context_length"] == 4096
    assert all(card["ready"] for card in listed.values())


def test_requests_route_by_model_with_each_providers_key(
    served: Server, controls: dict[str, FakeControl]
) -> None:
    for model in ("alpha-1", "beta-1", "gamma-1"):
        response = chat(served.url, {"model": model, "messages": USER})
        assert response.status_code == 200, response.text
        assert response.json()["model"] == model
    alpha, beta, gamma = (controls[n].requests() for n in ("alpha", "beta", "gamma"))
    assert [(r["body"]["model"], r["authorization"]) for r in alpha] == [
        ("alpha-1", "Bearer alpha-secret")
    ]
    assert [(r["body"]["model"], r["authorization"]) for r in beta] == [
        ("beta-1", "Bearer beta-secret")
    ]
    # No api_key_env: a placeholder key, never another provider's.
    assert [(r["body"]["model"], r["authorization"]) for r in gamma] == [
        ("gamma-1", "Bearer not-set")
    ]


def test_a_request_without_model_goes_to_the_default(
    served: Server, controls: dict[str, FakeControl]
) -> None:
    response = chat(served.url, {"messages": USER})
    assert response.status_code == 200 and response.json()["model"] == "beta-1"
    assert [r["body"]["model"] for r in controls["beta"].requests()] == ["beta-1"]
    health = httpx.get(f"{served.url}/health/ready")
    assert health.status_code == 200
    assert (health.json()["model"], health.json()["provider"]) == ("beta-1", "beta")


def test_the_local_model_answers_beside_the_remote_ones(served: Server) -> None:
    until_ready(served, "smollm2", timeout=120)
    body = {"model": "smollm2", "messages": USER, "max_tokens": 4, "temperature": 0}
    response = chat(served.url, body)
    assert response.status_code == 200, response.text
    assert response.json()["model"] == "smollm2"
    assert response.json()["usage"]["completion_tokens"] >= 1


def test_an_unknown_model_is_a_400_listing_the_valid_ones(
    served: Server, controls: dict[str, FakeControl]
) -> None:
    response = chat(served.url, {"model": "gpt-9", "messages": USER})
    assert response.status_code == 400
    error = error_of(response)
    assert (error["code"], error["type"], error["param"]) == (
        "model_not_found",
        "invalid_request_error",
        "model",
    )
    assert "'gpt-9'" in error["message"]
    for model in ("alpha-1", "beta-1", "gamma-1", "smollm2"):
        assert model in error["message"]
    assert not any(c.requests() for c in controls.values()), "nothing went upstream"


def test_the_openai_client_lists_and_picks_models(
    served: Server, controls: dict[str, FakeControl]
) -> None:
    import openai

    with openai.OpenAI(base_url=f"{served.url}/v1", api_key="unused", max_retries=0) as client:
        assert {m.id for m in client.models.list()} >= {"alpha-1", "beta-1", "smollm2"}
        stream = client.chat.completions.create(
            model="gamma-1", messages=[{"role": "user", "content": "via gamma"}], stream=True
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Echo: via gamma"


# --- discovery -----------------------------------------------------------------------------


def test_discovery_follows_the_upstreams_list(
    served: Server, controls: dict[str, FakeControl]
) -> None:
    gamma = controls["gamma"]
    gamma.offer({"id": "gamma-1"}, {"id": "gamma-2"})
    wait_until(lambda: "gamma-2" in cards(served), 10, "gamma-2 discovered")
    assert chat(served.url, {"model": "gamma-2", "messages": USER}).status_code == 200
    gamma.offer({"id": "gamma-2"})
    wait_until(lambda: "gamma-1" not in cards(served), 10, "gamma-1 gone")
    assert chat(served.url, {"model": "gamma-1", "messages": USER}).status_code == 400


def test_allow_only_listed_keeps_unlisted_ids_out(served: Server) -> None:
    until_ready(served, "alpha-1")  # alpha's list was read: it offers alpha-unlisted too
    assert "alpha-unlisted" not in cards(served)
    response = chat(served.url, {"model": "alpha-unlisted", "messages": USER})
    assert response.status_code == 400


# --- readiness and failure isolation -----------------------------------------------------------


def test_readiness_is_per_model(served: Server, controls: dict[str, FakeControl]) -> None:
    until_ready(served, "alpha-1")
    controls["alpha"].stall(True)
    until_ready(served, "alpha-1", ready=False, timeout=10)
    listed = cards(served)
    assert listed["beta-1"]["ready"] and listed["gamma-1"]["ready"]
    assert httpx.get(f"{served.url}/health/ready").status_code == 200, "the default is ready"
    controls["alpha"].stall(False)
    until_ready(served, "alpha-1", timeout=10)


async def token_gaps(client: httpx.AsyncClient, url: str) -> list[float]:
    """Seconds between the content events of one streamed beta reply, at the client."""
    body = {"model": "beta-1", "messages": USER, "stream": True}
    stamps: list[float] = []
    async with client.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data: {") and '"content":"tok' in line:
                stamps.append(time.perf_counter())
    assert len(stamps) == GAP_TOKENS
    return [b - a for a, b in itertools.pairwise(stamps)]


async def test_a_stalled_provider_never_slows_another(
    served: Server, controls: dict[str, FakeControl]
) -> None:
    alpha, beta = controls["alpha"], controls["beta"]
    tokens = [f"tok{i} " for i in range(GAP_TOKENS)]
    beta.script({"tokens": tokens, "delay_ms": PACE_MS, "times": 2})
    async with httpx.AsyncClient(timeout=30) as client:
        alone = await token_gaps(client, served.url)

        alpha.stall(True)
        url = f"{served.url}/v1/chat/completions"
        held = {"model": "alpha-1", "messages": USER, "stream": True}
        stalled = [asyncio.create_task(client.post(url, json=held)) for _ in range(2)]
        await asyncio.to_thread(
            wait_until,
            lambda: sum(r["state"] == "stalled" for r in alpha.requests()) == 2,
            10,
            "two alpha requests stalled upstream",
        )
        # alpha is at its cap: refused at once, with Retry-After, for alpha only.
        busy = await client.post(url, json={"model": "alpha-1", "messages": USER})
        beside = await token_gaps(client, served.url)
        for task in stalled:
            task.cancel()
        await asyncio.gather(*stalled, return_exceptions=True)
    alpha.stall(False)

    assert busy.status_code == 503 and busy.headers["retry-after"] == "3"
    assert busy.json()["error"]["code"] == "provider_busy"
    assert "alpha" in busy.json()["error"]["message"]
    # The same reply's pace with alpha stalled and without, measured in this test: the
    # ratio of medians, so the machine's speed cancels out.
    ratio = statistics.median(beside) / statistics.median(alone)
    assert ratio < 1.5, f"beta's median gap {ratio:.2f}x its unloaded one"
    assert [r["state"] for r in alpha.settled(2)] == ["cancelled", "cancelled"]
    # The cap is given back: alpha serves again.
    wait_until(
        lambda: chat(served.url, {"model": "alpha-1", "messages": USER}).status_code == 200,
        10,
        "alpha to serve again",
    )
