"""Open WebUI, the chat app people install: it does the whole stack's job.

Offline (no model downloads, no update checks), its OpenAI connection pointed at the fake
upstream, Ollama off, a data folder of its own, and authentication off: with
`WEBUI_AUTH=False` it still wants a token, which the bench takes by signing in as the
single admin user it makes (`admin@localhost`, empty password). The work it does after a
reply in its UI (titles, tags, follow-ups) is switched off: chat completions only.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import httpx

from bench.peers.install import Installed, PeerUnavailable, ensure
from tests.support.servers import Server, free_port, http_ok, start, wait_until

VERSION = "0.12.4"
REQUIREMENTS = [f"open-webui=={VERSION}"]
MODEL = "fake-model"
START_TIMEOUT_S = 240


def install() -> Installed:
    return ensure("open-webui", REQUIREMENTS)


def environment(upstream: Server, data: Path) -> dict[str, str]:
    return {
        "DATA_DIR": str(data),
        "HOME": str(data),
        "OFFLINE_MODE": "true",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "WEBUI_AUTH": "False",
        "WEBUI_SECRET_KEY": "bench-open-webui-secret-of-32-bytes",
        "ENABLE_OLLAMA_API": "false",
        "ENABLE_OPENAI_API": "true",
        "OPENAI_API_BASE_URL": f"{upstream.url}/v1",
        "OPENAI_API_KEY": "fake-key",
        "ENABLE_TITLE_GENERATION": "false",
        "ENABLE_TAGS_GENERATION": "false",
        "ENABLE_FOLLOW_UP_GENERATION": "false",
        "ENABLE_AUTOCOMPLETE_GENERATION": "false",
        "ENABLE_RETRIEVAL_QUERY_GENERATION": "false",
        "ENABLE_SEARCH_QUERY_GENERATION": "false",
        "ENABLE_WEB_SEARCH": "false",
        "RAG_EMBEDDING_MODEL_AUTO_UPDATE": "false",
        "ENABLE_VERSION_UPDATE_CHECK": "false",
        "ANONYMIZED_TELEMETRY": "false",
        "SCARF_NO_ANALYTICS": "true",
        "DO_NOT_TRACK": "true",
        "GLOBAL_LOG_LEVEL": "ERROR",
        "UVICORN_WORKERS": "1",
    }


def start_open_webui(installed: Installed, upstream: Server) -> Server:
    data = Path(tempfile.mkdtemp(prefix="bench-open-webui-"))
    port = free_port()
    cmd = [str(installed.bin("open-webui")), "serve", "--host", "127.0.0.1", "--port", str(port)]
    try:
        return start(
            "open-webui",
            cmd,
            port,
            http_ok(f"http://127.0.0.1:{port}/health"),
            environment(upstream, data),
            timeout=START_TIMEOUT_S,
        )
    except RuntimeError as exc:
        raise PeerUnavailable(f"open-webui did not start: {str(exc)[-800:]}") from exc


def sign_in(server: Server) -> str:
    """The admin's token, once the model list from the fake upstream is in."""
    answer = httpx.post(
        f"{server.url}/api/v1/auths/signin",
        json={"email": "admin@localhost", "password": ""},
        timeout=30,
    )
    if answer.status_code != 200:
        raise PeerUnavailable(f"open-webui sign-in: HTTP {answer.status_code} {answer.text[:300]}")
    token = str(answer.json()["token"])

    def model_listed() -> bool:
        found = httpx.get(
            f"{server.url}/api/models", headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        return found.status_code == 200 and any(
            m.get("id") == MODEL for m in found.json().get("data", [])
        )

    began = time.monotonic()
    try:
        wait_until(model_listed, 60, "open-webui model list", server.proc)
    except Exception as exc:
        raise PeerUnavailable(
            f"open-webui never listed {MODEL} from the fake upstream "
            f"({time.monotonic() - began:.0f} s): {exc}"
        ) from exc
    return token
