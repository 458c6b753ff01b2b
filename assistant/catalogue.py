"""The catalogue: which models this assistant serves, through which providers.

Two sources, one shape. With no `MODELS_FILE`, today's single-provider settings
(`ASSISTANT_PROVIDER`, `OPENAI_*`, `HF_*`, `LOCAL_*`) make a catalogue of one provider and
one model. With `MODELS_FILE`, a TOML file lists any number of providers and models:

    default = "smollm2"
    [[providers]]
    name = "vllm"
    kind = "openai"
    base_url = "http://vllm:8000/v1"
    api_key_env = "VLLM_API_KEY"   # the variable holding the key: never the key itself
    [[models]]
    id = "smollm2"
    provider = "local"

The file is checked whole at start; the first problem found is raised as `CatalogueError`,
naming the entry (`providers[2] "vllm": base_url: ...`), and the service does not start.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from assistant.config import Settings

ProviderKind = Literal["local", "openai", "huggingface"]
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
SECRET_KEYS = {"api_key", "token", "hf_token", "key", "secret", "password"}


Entry = TypeVar("Entry", bound=BaseModel)


class CatalogueError(ValueError):
    """The catalogue cannot be served as configured; the message names the entry."""


class ProviderSpec(BaseModel):
    """One `[[providers]]` entry. Unset limits fall back to the service-wide settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: ProviderKind
    base_url: str | None = None
    api_key_env: str | None = None
    discover: bool = False
    allow_only_listed: bool = False
    max_concurrency: int | None = Field(default=None, ge=1)
    timeout: float | None = Field(default=None, gt=0)  # seconds to the first token
    retries: int | None = Field(default=None, ge=0)  # attempts after the first
    max_tokens: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> ProviderSpec:
        if not NAME.match(self.name):
            raise ValueError("name: letters, digits, '.', '_' or '-', at most 64")
        if self.discover and self.kind != "openai":
            raise ValueError("discover: only providers of kind 'openai' list their models")
        if self.base_url is not None and not self.base_url.startswith(("http://", "https://")):
            raise ValueError("base_url: must start with http:// or https://")
        if self.kind == "local" and (self.base_url or self.api_key_env):
            raise ValueError("the local provider takes no base_url or api_key_env")
        return self


class ModelSpec(BaseModel):
    """One `[[models]]` entry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=256)
    provider: str
    display_name: str | None = None
    context_length: int | None = Field(default=None, ge=1)


@dataclass(frozen=True)
class Catalogue:
    providers: tuple[ProviderSpec, ...]
    models: tuple[ModelSpec, ...]
    default: str
    # The providers' keys, read from the environment (or, for the single-provider settings,
    # from Settings): never from the file.
    keys: dict[str, str | None] = field(default_factory=dict)
    source: str = "settings"

    def provider(self, name: str) -> ProviderSpec:
        return next(p for p in self.providers if p.name == name)


def single_provider(settings: Settings, local_model_id: str) -> Catalogue:
    """Today's single-provider settings as a catalogue of one."""
    kind = settings.assistant_provider
    if kind == "openai":
        spec = ProviderSpec(name="openai", kind="openai", base_url=settings.openai_base_url)
        model = settings.openai_model
        key = settings.openai_api_key
    elif kind == "huggingface":
        spec = ProviderSpec(name="huggingface", kind="huggingface")
        model = settings.hf_model
        key = settings.hf_token
    else:
        spec = ProviderSpec(name="local", kind="local")
        model = local_model_id
        key = None
    secret = key.get_secret_value() if key is not None else None
    return Catalogue(
        providers=(spec,),
        models=(ModelSpec(id=model, provider=spec.name),),
        default=model,
        keys={spec.name: secret},
    )


def entry_name(kind: str, index: int, raw: object) -> str:
    label = raw.get("name") or raw.get("id") if isinstance(raw, dict) else None
    return f"{kind}[{index}]" + (f" {label!r}" if isinstance(label, str) else "")


def first_problem(error: ValidationError) -> str:
    problem = error.errors()[0]
    where = ".".join(str(part) for part in problem["loc"])
    message = str(problem["msg"]).removeprefix("Value error, ")
    if problem["type"] == "extra_forbidden" and where in SECRET_KEYS:
        message = "secrets never go in this file: name the variable holding it in api_key_env"
    return f"{where}: {message}" if where else message


def parse_entries(
    data: dict[str, object], kind: str, model: type[Entry], source: str
) -> list[Entry]:
    raw_entries = data.get(kind, [])
    if not isinstance(raw_entries, list):
        raise CatalogueError(f"{source}: {kind}: expected [[{kind}]] tables")
    parsed = []
    for index, raw in enumerate(raw_entries):
        try:
            parsed.append(model.model_validate(raw))
        except ValidationError as exc:
            name = entry_name(kind, index, raw)
            raise CatalogueError(f"{source}: {name}: {first_problem(exc)}") from None
    return parsed


def check(providers: list[ProviderSpec], models: list[ModelSpec], source: str) -> None:
    names: set[str] = set()
    for index, spec in enumerate(providers):
        if spec.name in names:
            raise CatalogueError(f"{source}: providers[{index}] {spec.name!r}: name: used twice")
        names.add(spec.name)
    locals_ = [p.name for p in providers if p.kind == "local"]
    if len(locals_) > 1:
        raise CatalogueError(
            f"{source}: providers {locals_}: one local provider at most (one model in memory)"
        )
    ids: set[str] = set()
    for index, model in enumerate(models):
        where = f"{source}: models[{index}] {model.id!r}"
        if model.id in ids:
            raise CatalogueError(f"{where}: id: used twice")
        ids.add(model.id)
        if model.provider not in names:
            known = ", ".join(sorted(names)) or "none"
            raise CatalogueError(
                f"{where}: provider: no provider named {model.provider!r} (known: {known})"
            )
    if not models:
        raise CatalogueError(f"{source}: models: list at least one [[models]] entry")


def from_file(path: Path, environ: dict[str, str] | None = None) -> Catalogue:
    """Read and check `MODELS_FILE`; keys come from `environ` (the process's by default)."""
    source = f"MODELS_FILE {path}"
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise CatalogueError(f"{source}: cannot be read ({exc.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CatalogueError(f"{source}: not valid TOML: {exc}") from None
    unknown = set(data) - {"default", "providers", "models"}
    if unknown:
        raise CatalogueError(
            f"{source}: unknown top-level keys {sorted(unknown)} "
            "(expected default, [[providers]], [[models]])"
        )
    providers = parse_entries(data, "providers", ProviderSpec, source)
    models = parse_entries(data, "models", ModelSpec, source)
    check(providers, models, source)
    default = data.get("default", models[0].id)
    if not isinstance(default, str) or default not in {m.id for m in models}:
        listed = ", ".join(m.id for m in models)
        raise CatalogueError(
            f"{source}: default: {default!r} is not a listed model id (listed: {listed})"
        )
    env = os.environ if environ is None else environ
    keys = {p.name: env.get(p.api_key_env) if p.api_key_env else None for p in providers}
    return Catalogue(tuple(providers), tuple(models), default, keys, source)
