"""Drive the fake model servers (tests/fakes) from tests: script failures, read records."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import httpx

from tests.support.servers import PYTHON, Server, free_port, http_ok, start, wait_until

SETTLED = ("completed", "failed", "cancelled", "dropped")


def start_hf_upstream(port: int | None = None, **options: str) -> Server:
    """The fake Hugging Face text-generation server (FAKE_HF_CHAT=1 adds the chat route)."""
    port = port or free_port()
    cmd = [PYTHON, "-m", "tests.fakes.hf_upstream", "--port", str(port)]
    return start("fake-hf", cmd, port, http_ok(f"http://127.0.0.1:{port}/health"), env=options)


class FakeControl:
    def __init__(self, server: Server) -> None:
        self.url = server.url

    def reset(self) -> None:
        httpx.post(f"{self.url}/_fake/reset").raise_for_status()

    def script(self, *behaviours: dict[str, Any]) -> None:
        httpx.post(f"{self.url}/_fake/script", json=list(behaviours)).raise_for_status()

    def stall(self, on: bool) -> None:
        """Stall mode: every model request and model list hangs until `stall(False)`."""
        httpx.post(f"{self.url}/_fake/stall", json={"on": on}).raise_for_status()

    def offer(self, *models: dict[str, Any]) -> None:
        """What the OpenAI fake's `GET /v1/models` lists from now on."""
        httpx.post(f"{self.url}/_fake/models", json=list(models)).raise_for_status()

    def requests(self) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = httpx.get(f"{self.url}/_fake/requests").json()
        return records

    def settled(self, count: int, timeout: float = 15) -> list[dict[str, Any]]:
        """The first `count` requests once each has ended one way or another."""

        def done() -> bool:
            records = self.requests()
            return len(records) >= count and all(r["state"] in SETTLED for r in records[:count])

        wait_until(done, timeout, f"{count} settled fake upstream requests")
        return self.requests()[:count]


@contextlib.contextmanager
def unaccepting_port() -> Iterator[int]:
    """A port whose accept queue is full: connecting hangs until the client's timeout."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = int(listener.getsockname()[1])
    filler = socket.create_connection(("127.0.0.1", port))  # takes the only queue slot
    try:
        yield port
    finally:
        filler.close()
        listener.close()


def closed_port() -> int:
    """A port nobody listens on: connecting is refused at once."""
    return free_port()
