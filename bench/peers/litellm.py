"""LiteLLM's proxy, the gateway people put in front of models: it does assistant's job.

One OpenAI-compatible model pointing at the fake upstream, no database, its quietest
logging, a master key as its docs ask for production. One uvicorn worker, as assistant runs.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench.peers.install import Installed, PeerUnavailable, ensure
from tests.support.servers import Server, free_port, http_ok, start

VERSION = "1.110.2"
# The `proxy` extra of this release pins `litellm-proxy`, which is not published on PyPI
# (pip: "No matching distribution found for litellm-proxy==1.110.2"); the proxy's code
# ships in the litellm wheel itself, so what it imports is named here instead: the extra's
# other requirements (from the wheel's metadata) and the modules the proxy failed to import
# without them, pinned to the versions measured.
REQUIREMENTS = [
    f"litellm=={VERSION}",
    *["gunicorn==23.0.0", "uvicorn==0.54.0", "uvloop==0.23.0", "fastapi==0.165.0"],
    *["starlette==1.10.0", "backoff==2.2.1", "rq==2.12.0", "websockets==17.4"],
    *["orjson==3.13.0", "apscheduler==3.11.3", "pyjwt==2.15.1", "cryptography==50.0.2"],
    *["semver==3.1.2", "python-multipart==0.0.34", "expression==5.8.0"],
    *["fastapi-sso==0.23.0", "mcp==2.3.0", "soundfile==0.14.0"],
]
MASTER_KEY = "sk-bench-litellm"
MODEL = "fake-model"
START_TIMEOUT_S = 120


def config(upstream: Server) -> str:
    return (
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{MODEL}\n"
        f"      api_base: {upstream.url}/v1\n"
        "      api_key: fake-key\n"
        "litellm_settings:\n"
        "  set_verbose: false\n"
        "  json_logs: false\n"
        "general_settings:\n"
        "  disable_spend_logs: true\n"
    )


def install() -> Installed:
    return ensure("litellm", REQUIREMENTS)


def start_litellm(installed: Installed, upstream: Server) -> Server:
    folder = Path(tempfile.mkdtemp(prefix="bench-litellm-"))
    conf = folder / "config.yaml"
    conf.write_text(config(upstream))
    port = free_port()
    cmd = [
        str(installed.bin("litellm")),
        *["--config", str(conf), "--host", "127.0.0.1", "--port", str(port)],
        *["--num_workers", "1"],
    ]
    env = {
        "LITELLM_MASTER_KEY": MASTER_KEY,
        "LITELLM_LOG": "ERROR",
        "LITELLM_MODE": "PRODUCTION",
        "DISABLE_SCHEMA_UPDATE": "true",
        "LITELLM_TELEMETRY": "False",
        # Offline: the price list that ships with it, not a download retried for ~10 s.
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "HOME": str(folder),
    }
    try:
        return start(
            "litellm",
            cmd,
            port,
            http_ok(f"http://127.0.0.1:{port}/health/liveliness"),
            env,
            timeout=START_TIMEOUT_S,
        )
    except RuntimeError as exc:
        raise PeerUnavailable(f"litellm did not start: {str(exc)[-800:]}") from exc
