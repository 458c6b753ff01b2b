"""Assistant behind real fake upstreams: each server a real process on a free port.

Timeouts and retries are short here so the failure tests finish quickly; every failure is
scripted on the fake upstream per test (see tests/fakes/script.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fake_control import FakeControl, closed_port, start_hf_upstream, unaccepting_port
from tests.support.servers import Server, running, start_assistant, start_fake_upstream

SYSTEM_PROMPT = "You are the test assistant."
OPENAI_MAX_TOKENS = 300
HF_MAX_NEW_TOKENS = 40
FAST_FAILURES = {
    "UPSTREAM_CONNECT_TIMEOUT": "1",
    "UPSTREAM_FIRST_TOKEN_TIMEOUT": "1.5",
    "UPSTREAM_IDLE_TIMEOUT": "1.5",
    "UPSTREAM_RETRY_ATTEMPTS": "2",
    "UPSTREAM_RETRY_BACKOFF": "0.05",
    "ASSISTANT_RETRY_AFTER": "3",
    "ASSISTANT_SYSTEM_PROMPT": SYSTEM_PROMPT,
}


def openai_env(base_url: str, **extra: str) -> dict[str, str]:
    return {
        "ASSISTANT_PROVIDER": "openai",
        "OPENAI_BASE_URL": base_url,
        "OPENAI_API_KEY": "upstream-key",
        "OPENAI_MODEL": "fake-model",
        "OPENAI_MAX_TOKENS": str(OPENAI_MAX_TOKENS),
        **FAST_FAILURES,
        **extra,
    }


def hf_env_for(base_url: str, **extra: str) -> dict[str, str]:
    return {
        "ASSISTANT_PROVIDER": "huggingface",
        "HF_BASE_URL": base_url,
        "HF_HUB_URL": base_url,
        "HF_TOKEN": "hf_test_token",
        "HF_MODEL": "mistralai/Mistral-7B-Instruct-v0.2",
        "HF_MAX_NEW_TOKENS": str(HF_MAX_NEW_TOKENS),
        **FAST_FAILURES,
        **extra,
    }


def local_env(parallel: int, queue: int) -> dict[str, str]:
    """The real embedded SmolLM2 writing `parallel` replies at once, `queue` more waiting."""
    return {
        "ASSISTANT_PROVIDER": "local",
        "LOCAL_PARALLEL": str(parallel),
        "LOCAL_QUEUE_SIZE": str(queue),
        "LOCAL_MAX_TOKENS": "1000",
    }


def assistant_with(env: dict[str, str], timeout: float = 60) -> Iterator[Server]:
    """A fixture's body: assistant with `env`, stopped when the fixture's scope ends."""
    with running(start_assistant(env, timeout=timeout)) as server:
        yield server


def control(upstream: Server) -> FakeControl:
    """A test's control of a shared fake upstream, with the last test's script cleared."""
    fake = FakeControl(upstream)
    fake.reset()
    return fake


# OpenAI-compatible --------------------------------------------------------------------


@pytest.fixture(scope="session")
def openai_upstream() -> Iterator[Server]:
    with running(start_fake_upstream()) as server:
        yield server


@pytest.fixture
def upstream(openai_upstream: Server) -> FakeControl:
    return control(openai_upstream)


@pytest.fixture(scope="session")
def assistant(openai_upstream: Server) -> Iterator[Server]:
    yield from assistant_with(openai_env(f"{openai_upstream.url}/v1"))


@pytest.fixture(scope="session")
def secured_assistant(openai_upstream: Server) -> Iterator[Server]:
    yield from assistant_with(
        openai_env(
            f"{openai_upstream.url}/v1",
            ASSISTANT_API_KEY="s3cret",
            ASSISTANT_MAX_MESSAGES="3",
            ASSISTANT_MAX_INPUT_CHARS="200",
            ASSISTANT_MAX_TOKENS="50",
            ASSISTANT_MAX_BODY_BYTES="4096",
        )
    )


@pytest.fixture(scope="session")
def unreachable_assistant() -> Iterator[Server]:
    yield from assistant_with(openai_env(f"http://127.0.0.1:{closed_port()}/v1"))


@pytest.fixture(scope="session")
def blackhole_assistant() -> Iterator[Server]:
    with unaccepting_port() as port:
        yield from assistant_with(openai_env(f"http://127.0.0.1:{port}/v1"))


# Hugging Face -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def hf_upstream_server() -> Iterator[Server]:
    """Text generation only, like the classic Inference API models."""
    with running(start_hf_upstream()) as server:
        yield server


@pytest.fixture
def hf_upstream(hf_upstream_server: Server) -> FakeControl:
    return control(hf_upstream_server)


@pytest.fixture(scope="session")
def hf_assistant(hf_upstream_server: Server) -> Iterator[Server]:
    yield from assistant_with(hf_env_for(hf_upstream_server.url))


@pytest.fixture(scope="session")
def hf_gptj_assistant(hf_upstream_server: Server) -> Iterator[Server]:
    """A base model without a chat template: the built-in transcript prompt."""
    yield from assistant_with(
        hf_env_for(
            hf_upstream_server.url, HF_MODEL="EleutherAI/gpt-j-6b", HF_TASK="text-generation"
        )
    )


@pytest.fixture(scope="session")
def hf_chat_upstream_server() -> Iterator[Server]:
    with running(start_hf_upstream(FAKE_HF_CHAT="1")) as server:
        yield server


@pytest.fixture
def hf_chat_upstream(hf_chat_upstream_server: Server) -> FakeControl:
    return control(hf_chat_upstream_server)


@pytest.fixture(scope="session")
def hf_chat_assistant(hf_chat_upstream_server: Server) -> Iterator[Server]:
    yield from assistant_with(hf_env_for(hf_chat_upstream_server.url, HF_TASK="chat"))


# The embedded model -------------------------------------------------------------------


@pytest.fixture(scope="session")
def local_assistant() -> Iterator[Server]:
    """One request at a time, none queued."""
    yield from assistant_with(local_env(parallel=1, queue=0), timeout=180)


@pytest.fixture(scope="session")
def parallel_assistant() -> Iterator[Server]:
    yield from assistant_with(local_env(parallel=4, queue=2), timeout=180)
