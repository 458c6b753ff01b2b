"""`lines_of`: the upstream's event stream split into lines however the reads cut it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
import pytest

from assistant.providers.openai_compatible import lines_of


class Reads(httpx2.AsyncByteStream):
    def __init__(self, reads: list[bytes]) -> None:
        self.reads = reads

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for read in self.reads:
            yield read


async def lines(reads: list[bytes]) -> list[bytes]:
    response = httpx2.Response(200, stream=Reads(reads))
    return [line async for line in lines_of(response)]


@pytest.mark.parametrize(
    "reads",
    [
        [b'data: {"a":1}\n\ndata: [DONE]\n\n'],
        [b'data: {"a"', b":1}\n", b"\ndata: [DO", b"NE]\n\n"],
        [b'data: {"a":1}\r\n\r\ndata: [DONE]\r\n\r\n'],
        [b'data: {"a":1}\r', b"\n\r\ndata: [DONE]\r", b"\n"],
    ],
)
async def test_lines_however_the_reads_cut_them(reads: list[bytes]) -> None:
    found = [line for line in await lines(reads) if line]
    assert found == [b'data: {"a":1}', b"data: [DONE]"]


async def test_characters_str_splitlines_would_break_on_stay_in_their_line() -> None:
    line = 'data: {"content":"a\u2028b\u0085c\x1cd"}'.encode()
    assert await lines([line + b"\n\n"]) == [line, b""]


async def test_an_unterminated_last_line_is_kept() -> None:
    assert await lines([b"data: x\n", b"data: ", b"y"]) == [b"data: x", b"data: y"]
