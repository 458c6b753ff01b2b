"""Errors tell the caller what failed, never where: no upstream address, body or exception.

An upstream that answers 500 with a proxy's HTML page naming an internal host, and an
upstream at a private address nobody answers on: the caller gets a stable message and code
in OpenAI's error shape, and the assistant's own log keeps the detail, without the keys.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.integration.assistant.conftest import hf_env_for, openai_env
from tests.integration.assistant.helpers import USER, chat
from tests.support.fake_control import closed_port
from tests.support.servers import Server, running, start_assistant

INTERNAL_HOST = "gpu-node-7.corp.internal"
# Loopback but not 127.0.0.1: this machine's network answers for every routable address,
# so an unreachable internal address is made with a closed port here.
PRIVATE_ADDRESS = "127.31.41.59"
PAGE = (
    "<html><head><title>500 Internal Server Error</title></head><body>"
    f"<h1>Internal Server Error</h1><p>upstream http://{INTERNAL_HOST}:8000/v1 failed</p>"
    '<pre>Traceback (most recent call last):\n  File "/srv/model.py", line 7</pre>'
    "</body></html>"
)
SECRETS = ("upstream-key", "hf_test_token")


class ProxyErrorPage(BaseHTTPRequestHandler):
    """Every request: 500 with an HTML error page, as a misconfigured proxy answers."""

    def _page(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = PAGE.encode()
        self.send_response(500)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _page

    def log_message(self, format: str, *args: object) -> None:
        pass  # the test reads responses, not this server's access log


@pytest.fixture(scope="module")
def html_upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), ProxyErrorPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def leaks(text: str, upstream_url: str) -> list[str]:
    forbidden = [INTERNAL_HOST, PRIVATE_ADDRESS, upstream_url, "<html", "Traceback", "Error:"]
    return [word for word in forbidden if word in text]


def assert_private(server: Server, upstream_url: str, codes: set[str]) -> None:
    for stream in (False, True):
        response = chat(server.url, {"messages": USER, "stream": stream})
        assert response.status_code in (502, 503, 504), response.text
        assert response.headers["content-type"] == "application/json"
        error = response.json()["error"]
        assert set(error) <= {"message", "type", "code", "param"}
        assert error["code"] in codes
        assert not leaks(response.text, upstream_url), response.text
    log = server.log()
    assert not [secret for secret in SECRETS if secret in log]


@pytest.mark.parametrize("provider", ["openai", "huggingface"])
def test_an_upstream_html_error_page_stays_in_the_log(html_upstream: str, provider: str) -> None:
    env = (
        openai_env(f"{html_upstream}/v1")
        if provider == "openai"
        else hf_env_for(html_upstream, HF_TASK="text-generation")
    )
    with running(start_assistant(env)) as server:
        assert_private(server, html_upstream, {"upstream_error"})
        assert INTERNAL_HOST in server.log(), "the operator still sees what the upstream said"


@pytest.mark.parametrize("provider", ["openai", "huggingface"])
def test_an_unreachable_private_address_is_not_named(provider: str) -> None:
    url = f"http://{PRIVATE_ADDRESS}:{closed_port()}"
    env = openai_env(f"{url}/v1") if provider == "openai" else hf_env_for(url)
    with running(start_assistant(env)) as server:
        assert_private(server, url, {"upstream_unavailable", "upstream_timeout"})


def test_validation_errors_do_not_echo_the_input(assistant: Server) -> None:
    response = httpx.post(
        f"{assistant.url}/v1/chat/completions",
        json={"messages": [{"role": "wizard", "content": f"http://{INTERNAL_HOST}/"}]},
    )
    assert response.status_code == 400
    assert INTERNAL_HOST not in response.text
