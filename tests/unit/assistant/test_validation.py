"""Request validation: malformed requests and limits get 400/413 naming the problem.

The app runs in-process (its lifespan too) with the openai provider pointed at a closed
port: every request here is refused before any upstream call.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from assistant.app import create_app
from assistant.config import Settings

OK = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    settings = Settings(
        assistant_provider="openai",
        openai_base_url="http://127.0.0.1:9/v1",
        assistant_api_key="k",
        assistant_max_messages=3,
        assistant_max_input_chars=100,
        assistant_max_tokens=50,
        assistant_max_body_bytes=2048,
    )
    with TestClient(create_app(settings), headers={"Authorization": "Bearer k"}) as c:
        yield c


def post(client: TestClient, body: Any, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    response = client.post("/v1/chat/completions", json=body, **kwargs)
    return response.status_code, response.json()["error"]


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({}, "messages", "Field required"),
        ({"messages": []}, "messages", "at least 1 item"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role", "'system'"),
        ({"messages": [{"role": "user"}]}, "messages.0.content", "Field required"),
        ({"messages": OK, "temperature": 3}, "temperature", "less than or equal to 2"),
        ({"messages": OK, "top_p": 0}, "top_p", "greater than 0"),
        ({"messages": OK, "max_tokens": 0}, "max_tokens", "greater than or equal to 1"),
        ({"messages": OK, "stream": "often"}, "stream", "valid boolean"),
    ],
)
def test_malformed_requests_are_400_naming_the_field(
    client: TestClient, body: dict[str, Any], param: str, words: str
) -> None:
    status, error = post(client, body)
    assert status == 400
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["message"].startswith(f"{param}: ")
    assert words in error["message"]


def test_invalid_json_is_400(client: TestClient) -> None:
    response = client.post(
        "/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"


def test_too_many_messages_is_400_naming_the_limit(client: TestClient) -> None:
    status, error = post(client, {"messages": OK * 4})
    assert status == 400
    assert error["code"] == "too_many_messages"
    assert error["message"] == (
        "The request has 4 messages; ASSISTANT_MAX_MESSAGES allows at most 3."
    )


def test_too_much_text_is_413_naming_the_limit(client: TestClient) -> None:
    status, error = post(client, {"messages": [{"role": "user", "content": "x" * 101}]})
    assert status == 413
    assert error["code"] == "input_too_long"
    assert "ASSISTANT_MAX_INPUT_CHARS allows at most 100" in error["message"]


def test_max_tokens_over_the_cap_is_400_naming_the_limit(client: TestClient) -> None:
    status, error = post(client, {"messages": OK, "max_tokens": 51})
    assert status == 400
    assert error["param"] == "max_tokens"
    assert "ASSISTANT_MAX_TOKENS allows at most 50" in error["message"]


def test_oversized_body_is_413_before_it_is_read(client: TestClient) -> None:
    status, error = post(client, {"messages": OK, "padding": "x" * 4096})
    assert status == 413
    assert error["code"] == "request_too_large"
    assert "ASSISTANT_MAX_BODY_BYTES (2048 bytes)" in error["message"]


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic k"])
def test_v1_needs_the_shared_secret(client: TestClient, header: str | None) -> None:
    headers = {"Authorization": header} if header else {"Authorization": ""}
    for method, path in (("POST", "/v1/chat/completions"), ("GET", "/v1/models")):
        response = client.request(method, path, json={"messages": OK}, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"


def test_health_needs_no_secret(client: TestClient) -> None:
    assert client.get("/health/live", headers={"Authorization": ""}).status_code == 200
