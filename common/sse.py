"""Reading a server-sent event stream a read at a time, for both services' HTTP clients.

A relay falls behind its upstream now and then (a busy event loop, a slow reader): the
tokens that piled up meanwhile then arrive in one read. Handing that read's lines on
together lets each hop send all of them in one socket write instead of one per token,
while a token that arrives on its own still goes on at once, on its own.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable
from typing import ClassVar


async def line_batches(reads: AsyncIterable[bytes]) -> AsyncGenerator[list[bytes], None]:
    """The complete lines of each read, as bytes, together (an unterminated last one too).

    Not `str.splitlines` (nor httpx's `aiter_lines`, which uses it): that also breaks on
    U+2028, U+0085 and other characters a JSON string may hold raw. Server-sent events are
    UTF-8 and end lines only with CR, LF or CRLF: exactly what `bytes.splitlines` splits on.
    A CRLF cut between two reads yields an extra empty line, which means nothing to a
    reader of `data:` lines.
    """
    pending = b""
    async for data in reads:
        if not data:
            continue
        lines = (pending + data).splitlines() if pending else data.splitlines()
        pending = b"" if data.endswith((b"\n", b"\r")) else lines.pop()
        if lines:
            yield lines
    if pending:
        yield [pending]


def data_payload(line: bytes) -> bytes | None:
    """The payload of a `data:` line; None for any other line (comments, `event:`, blanks)."""
    if not line.startswith(b"data:"):
        return None
    return line[5:].strip()


class ChunkReader:
    """An OpenAI-style stream of `data:` chunks ending with `data: [DONE]`, a read at a time.

    A subclass says what a chunk means (`parse`) and which exceptions end the stream
    (`failures`). Such a failure is kept in `failure` for the caller to raise once it has
    passed on the text read before it: a reply cut by an error keeps all the text it had.
    """

    failures: ClassVar[tuple[type[Exception], ...]] = ()

    def __init__(self) -> None:
        self.done = False
        self.failure: Exception | None = None

    def parse(self, payload: bytes, texts: list[str]) -> None:
        """Append the chunk's text deltas to `texts`; note anything else it carries."""
        raise NotImplementedError

    async def batches(self, reads: AsyncIterable[bytes]) -> AsyncGenerator[list[str], None]:
        """The texts of each read that has any (or that `noted` news in); a failure is raised
        once the texts read before it have gone out.

        Reads on to the body's end after `[DONE]` (servers end it right there): a response
        left unread closes its connection instead of returning it to the pool, and the next
        request would wait for a new one (TCP, and TLS for a remote API).
        """
        async for lines in line_batches(reads):
            texts = self.read(lines)
            if texts or self.noted():
                yield texts
            if self.failure is not None:
                raise self.failure

    def noted(self) -> bool:
        """Whether the chunks read carried news besides text that the caller should get now
        (a subclass's queue place, say), so the read is handed on even without text."""
        return False

    def read(self, lines: list[bytes]) -> list[str]:
        """The texts of the chunks in `lines`, up to `[DONE]` or a failure (lines after
        either are ignored, so the caller can read the body to its end)."""
        texts: list[str] = []
        for line in lines:
            payload = None if self.done or self.failure else data_payload(line)
            if payload is None:
                continue
            if payload == b"[DONE]":
                self.done = True
                continue
            try:
                self.parse(payload, texts)
            except self.failures as exc:
                self.failure = exc
        return texts
