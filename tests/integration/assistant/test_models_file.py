"""A wrong MODELS_FILE stops assistant before it listens, and its log names the entry."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.servers import start_assistant


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (
            '[[providers]]\nname = "v"\nkind = "openai"\napi_key = "sk-1"\n'
            '[[models]]\nid = "m"\nprovider = "v"\n',
            "providers[0] 'v': api_key: secrets never go in this file",
        ),
        (
            '[[providers]]\nname = "v"\nkind = "openai"\n[[models]]\nid = "m"\nprovider = "w"\n',
            "models[0] 'm': provider: no provider named 'w'",
        ),
        ("default = [", "not valid TOML"),
    ],
)
def test_a_bad_models_file_stops_the_service_naming_the_entry(
    tmp_path: Path, text: str, named: str
) -> None:
    path = tmp_path / "models.toml"
    path.write_text(text)
    with pytest.raises(RuntimeError) as failed:
        start_assistant({"MODELS_FILE": str(path)}, timeout=30)
    assert "exited with" in str(failed.value)
    assert f"MODELS_FILE {path}: {named}" in str(failed.value)
    assert "sk-1" not in str(failed.value), "a secret in the file is never echoed"
