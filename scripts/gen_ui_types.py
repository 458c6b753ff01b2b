"""The UI's API types, generated: conversation's OpenAPI document -> chatui/src/api.gen.ts.

  gen_ui_types.py              write chatui/src/api.gen.ts
  gen_ui_types.py --check [F]  change nothing; exit 1 if F (default: api.gen.ts) is stale

The document comes from `create_app().openapi()`, without starting a server or reaching
Redis. A reply stream's events are `text/event-stream`, which OpenAPI cannot describe, so
their payload models are added to its schemas from the same pydantic models.
openapi-typescript (chatui's pinned dev dependency) turns it into TypeScript, offline. It is
version 6: version 7 builds its output with TypeScript 5's compiler API, which the TypeScript 7
that chatui compiles with no longer has.
Run it after changing a route or a model that the UI reads.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from conversation.app import create_app
from conversation.models import DeltaEvent, DoneEvent, ErrorEvent, QueuedEvent, StartEvent

ROOT = Path(__file__).resolve().parent.parent
CHATUI = ROOT / "chatui"
OUTPUT = CHATUI / "src" / "api.gen.ts"
GENERATOR = CHATUI / "node_modules" / ".bin" / "openapi-typescript"
STREAM_EVENTS: tuple[type[BaseModel], ...] = (
    StartEvent,
    QueuedEvent,
    DeltaEvent,
    DoneEvent,
    ErrorEvent,
)


class StaleError(Exception):
    pass


def document() -> dict[str, Any]:
    doc = create_app().openapi()
    # The UI's paths only: the tutorials' compatibility paths are not its business, and one
    # route serving GET and POST there gets an operation id that changes from run to run.
    doc["paths"] = {path: ops for path, ops in doc["paths"].items() if path.startswith("/api/")}
    schemas: dict[str, Any] = doc["components"]["schemas"]
    _, events = models_json_schema(
        [(model, "serialization") for model in STREAM_EVENTS],
        ref_template="#/components/schemas/{model}",
    )
    for name, schema in events["$defs"].items():
        if name in schemas and schemas[name] != schema:
            raise ValueError(f"two different schemas are named {name}")
        schemas[name] = schema
    return doc


def render() -> str:
    if not GENERATOR.exists():
        raise FileNotFoundError(f"{GENERATOR} is missing: run `./stack install --dev`")
    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp) / "openapi.json", Path(tmp) / "api.gen.ts"
        source.write_text(json.dumps(document(), indent=2, sort_keys=True))
        subprocess.run(
            [str(GENERATOR), str(source), "--output", str(target)],
            check=True,
            capture_output=True,
            cwd=CHATUI,
        )
        return target.read_text()


def check(path: Path) -> None:
    if path.read_text() != render():
        raise StaleError(f"{path} is stale: run `.venv/bin/python scripts/gen_ui_types.py`")


def main(argv: list[str]) -> int:
    if argv[:1] == ["--check"]:
        try:
            check(Path(argv[1]) if len(argv) > 1 else OUTPUT)
        except StaleError as exc:
            print(exc, file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(render())
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
