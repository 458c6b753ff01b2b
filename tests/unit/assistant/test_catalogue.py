"""MODELS_FILE: what it may say, and errors that name the entry at fault."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.catalogue import CatalogueError, from_file, single_provider
from assistant.config import Settings

GOOD = """
default = "gpt-4o-mini"

[[providers]]
name = "local"
kind = "local"

[[providers]]
name = "vllm"
kind = "openai"
base_url = "http://vllm:8000/v1"
api_key_env = "VLLM_API_KEY"
discover = true
allow_only_listed = false
max_concurrency = 64
timeout = 60
retries = 2

[[models]]
id = "smollm2"
provider = "local"
display_name = "SmolLM2 135M (local)"
context_length = 2048

[[models]]
id = "gpt-4o-mini"
provider = "vllm"
display_name = "GPT-4o mini"
context_length = 128000
"""

ONE_MODEL = '[[providers]]\nname = "p"\nkind = "openai"\n[[models]]\nid = "m"\nprovider = "p"\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "models.toml"
    path.write_text(text)
    return path


def test_a_good_file(tmp_path: Path) -> None:
    catalogue = from_file(write(tmp_path, GOOD), environ={"VLLM_API_KEY": "sk-vllm"})
    assert catalogue.default == "gpt-4o-mini"
    assert [p.name for p in catalogue.providers] == ["local", "vllm"]
    vllm = catalogue.provider("vllm")
    assert (vllm.max_concurrency, vllm.timeout, vllm.retries, vllm.discover) == (64, 60, 2, True)
    assert [m.id for m in catalogue.models] == ["smollm2", "gpt-4o-mini"]
    assert catalogue.keys == {"local": None, "vllm": "sk-vllm"}


def test_the_default_defaults_to_the_first_model(tmp_path: Path) -> None:
    assert from_file(write(tmp_path, ONE_MODEL), environ={}).default == "m"


def test_a_missing_key_variable_is_no_key(tmp_path: Path) -> None:
    catalogue = from_file(write(tmp_path, GOOD), environ={})
    assert catalogue.keys["vllm"] is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("default = [", "not valid TOML"),
        ("models = 3\n", "models: expected [[models]] tables"),
        ("colour = 1\n" + ONE_MODEL, "unknown top-level keys ['colour']"),
        (
            '[[providers]]\nname = "p"\nkind = "openai"\napi_key = "sk-secret"\n',
            "providers[0] 'p': api_key: secrets never go in this file",
        ),
        (
            '[[providers]]\nname = "p"\nkind = "openai"\nmax_concurency = 3\n',
            "providers[0] 'p': max_concurency: Extra inputs are not permitted",
        ),
        (
            '[[providers]]\nname = "p"\nkind = "grpc"\n',
            "providers[0] 'p': kind: Input should be 'local', 'openai' or 'huggingface'",
        ),
        (
            '[[providers]]\nname = "p"\nkind = "openai"\nmax_concurrency = 0\n',
            "providers[0] 'p': max_concurrency: Input should be greater than or equal to 1",
        ),
        (
            '[[providers]]\nname = "p"\nkind = "openai"\nbase_url = "vllm:8000"\n',
            "providers[0] 'p': base_url: must start with http:// or https://",
        ),
        (
            '[[providers]]\nname = "h"\nkind = "huggingface"\ndiscover = true\n',
            "providers[0] 'h': discover: only providers of kind 'openai'",
        ),
        (
            '[[providers]]\nname = "a b"\nkind = "openai"\n',
            "providers[0] 'a b': name: letters, digits",
        ),
        ('[[providers]]\nkind = "openai"\n', "providers[0]: name: Field required"),
        (
            ONE_MODEL + '[[providers]]\nname = "p"\nkind = "openai"\n',
            "providers[1] 'p': name: used twice",
        ),
        (
            '[[providers]]\nname = "a"\nkind = "local"\n'
            '[[providers]]\nname = "b"\nkind = "local"\n',
            "one local provider at most",
        ),
        (ONE_MODEL + '[[models]]\nid = "m"\nprovider = "p"\n', "models[1] 'm': id: used twice"),
        (
            ONE_MODEL + '[[models]]\nid = "n"\nprovider = "q"\n',
            "models[1] 'n': provider: no provider named 'q' (known: p)",
        ),
        (
            ONE_MODEL + '[[models]]\nid = "n"\nprovider = "p"\ncontext_length = -1\n',
            "models[1] 'n': context_length: Input should be greater than or equal to 1",
        ),
        ('[[providers]]\nname = "p"\nkind = "openai"\n', "models: list at least one"),
        ('default = "x"\n' + ONE_MODEL, "default: 'x' is not a listed model id (listed: m)"),
    ],
)
def test_errors_name_the_entry(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(CatalogueError) as raised:
        from_file(path, environ={})
    assert str(raised.value).startswith(f"MODELS_FILE {path}: ")
    assert message in str(raised.value)
    assert "sk-secret" not in str(raised.value)


def test_an_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match="cannot be read"):
        from_file(tmp_path / "missing.toml", environ={})


def test_the_single_provider_settings_are_a_catalogue_of_one() -> None:
    settings = Settings(
        _env_file=None,
        assistant_provider="openai",
        openai_model="gpt-x",
        openai_api_key="sk-env",
        openai_base_url="http://up/v1",
    )
    catalogue = single_provider(settings, local_model_id="unused")
    assert [(p.name, p.kind, p.base_url) for p in catalogue.providers] == [
        ("openai", "openai", "http://up/v1")
    ]
    assert [(m.id, m.provider) for m in catalogue.models] == [("gpt-x", "openai")]
    assert (catalogue.default, catalogue.keys) == ("gpt-x", {"openai": "sk-env"})
    local = single_provider(Settings(_env_file=None), local_model_id="SmolLM2")
    assert [m.id for m in local.models] == ["SmolLM2"] and local.providers[0].kind == "local"
