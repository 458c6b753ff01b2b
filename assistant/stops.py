"""Stop strings for raw-prompt models: cut the answer where a stop string begins.

Text that might be the start of a stop string is held back until the next token shows
whether it is, so the caller never sees part of a stop string.
"""

from __future__ import annotations


class StopFilter:
    __slots__ = ("_pending", "_stops")

    def __init__(self, stops: tuple[str, ...] | list[str]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._pending = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """Text safe to send now, and whether a stop string has ended the answer."""
        if not self._stops:
            return text, False
        buffer = self._pending + text
        hits = [i for i in (buffer.find(s) for s in self._stops) if i >= 0]
        if hits:
            self._pending = ""
            return buffer[: min(hits)], True
        keep = self._partial_suffix(buffer)
        self._pending = buffer[len(buffer) - keep :]
        return buffer[: len(buffer) - keep], False

    def flush(self) -> str:
        """What was held back, once the answer has ended without a stop string."""
        rest, self._pending = self._pending, ""
        return rest

    def _partial_suffix(self, buffer: str) -> int:
        longest = 0
        for stop in self._stops:
            for size in range(min(len(stop) - 1, len(buffer)), longest, -1):
                if buffer.endswith(stop[:size]):
                    longest = size
                    break
        return longest
