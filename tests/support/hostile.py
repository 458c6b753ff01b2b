"""What the hostile-input suites share: a tally of what was tried, and a Hypothesis runner for
schemathesis strategies outside pytest's parametrization (one operation at a time)."""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import APIOperation, Case

# Examples per generated operation and mode; the full run (`HOSTILE_EXAMPLES=500`, see
# tests/README.md) tries well over 1,000 requests per service.
EXAMPLES = int(os.environ.get("HOSTILE_EXAMPLES", "40"))


AnyCase = Case[Any]


def all_operations(schema: schemathesis.BaseSchema) -> list[APIOperation[Any, Any, Any, Any]]:
    """Every operation of the document; a document schemathesis cannot read fails here."""
    return [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]


@dataclass
class Tally:
    tried: int = 0
    statuses: Counter[int] = field(default_factory=Counter)

    def count(self, status: int) -> None:
        self.tried += 1
        self.statuses[status] += 1

    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    def line(self, what: str) -> str:
        by_status = ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses.items()))
        return (
            f"{what}: {self.tried} inputs tried, {self.server_errors()} server errors ({by_status})"
        )


def fuzz(strategy: Any, examples: int, call: Callable[[AnyCase], None]) -> None:
    """Run `call` on `examples` cases drawn from `strategy` (no example database: every run
    draws afresh, and nothing is written into the work tree)."""

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
    )
    @given(case=strategy)
    def run(case: AnyCase) -> None:
        call(case)

    run()


def openapi_schema(url: str) -> schemathesis.BaseSchema:
    """A service's own OpenAPI document, fetched from the running server."""
    return schemathesis.openapi.from_dict(httpx.get(url).json())


@contextlib.contextmanager
def tallied(what: str) -> Iterator[Tally]:
    """A tally whose figure line is printed when the block ends (`pytest -s` shows it)."""
    counts = Tally()
    yield counts
    print(counts.line(what))
