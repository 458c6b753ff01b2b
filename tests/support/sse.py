"""Read Server-Sent Events from an httpx streaming response, as a browser would."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson


@dataclass
class Event:
    event: str
    data: str
    id: str | None

    def json(self) -> Any:
        return orjson.loads(self.data)


def iter_events(lines: Iterator[str]) -> Iterator[Event]:
    """Parse the SSE wire format (comments and retry lines skipped) into events."""
    name = "message"
    data: list[str] = []
    event_id: str | None = None
    for line in lines:
        if line == "":
            if data:
                yield Event(name, "\n".join(data), event_id)
            name, data, event_id = "message", [], None
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
            elif field == "id":
                event_id = value
    if data:
        yield Event(name, "\n".join(data), event_id)


def read_events(response: httpx.Response) -> list[Event]:
    return list(iter_events(response.iter_lines()))
