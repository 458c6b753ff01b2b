"""An assistant that stays "starting" until a test lets it finish, for model-loading tests.

Its Hugging Face provider fetches the model's chat template at start-up from HF_HUB_URL; the
`Gate` holds that request, so assistant's /health/ready answers 503 until `Gate.open()`.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from tests.support.servers import Server, free_port, http_ok, start, uvicorn_cmd

NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class Gate:
    """An HTTP server that holds every request until `open()`, then answers 404."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._opened = threading.Event()
        self.held = threading.Event()  # set once a request is waiting at the gate
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            conn.recv(65536)
            self.held.set()
            self._opened.wait()
            conn.sendall(NOT_FOUND)

    def open(self) -> None:
        self._opened.set()

    def close(self) -> None:
        self._opened.set()
        self._listener.close()


def start_loading_assistant(hub: Gate, hf_upstream: Server, port: int | None = None) -> Server:
    """A real assistant that stays "starting" (its /health/ready 503) until `hub` opens."""
    port = port or free_port()
    env = {
        "ASSISTANT_PROVIDER": "huggingface",
        "HF_BASE_URL": hf_upstream.url,
        "HF_HUB_URL": hub.url,
        "HF_TOKEN": "hf_test_token",
        "HF_MODEL": "mistralai/Mistral-7B-Instruct-v0.2",
        "HF_TASK": "text-generation",
    }
    live = http_ok(f"http://127.0.0.1:{port}/health/live")
    return start("assistant", uvicorn_cmd("assistant.app:create_app", port), port, live, env)
