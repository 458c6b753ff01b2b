"""`line_batches`: an event stream split into lines however the reads cut it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from common.sse import ChunkReader, data_payload, line_batches


async def each(reads: list[bytes]) -> AsyncIterator[bytes]:
    for read in reads:
        yield read


async def batches(reads: list[bytes]) -> list[list[bytes]]:
    return [batch async for batch in line_batches(each(reads))]


async def lines(reads: list[bytes]) -> list[bytes]:
    return [line for batch in await batches(reads) for line in batch]


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


async def test_the_lines_of_one_read_come_together() -> None:
    found = await batches([b"data: a\n\ndata: b\n\ndata: ", b"c\n\n", b"", b"data: d\n"])
    assert found == [
        [b"data: a", b"", b"data: b", b""],
        [b"data: c", b""],
        [b"data: d"],
    ]


def test_data_payload() -> None:
    assert data_payload(b"data: [DONE]") == b"[DONE]"
    assert data_payload(b'data:{"a":1} ') == b'{"a":1}'
    assert data_payload(b": ping") is None
    assert data_payload(b"event: delta") is None


class Words(ChunkReader):
    failures = (ValueError,)

    def parse(self, payload: bytes, texts: list[str]) -> None:
        if payload == b"bad":
            raise ValueError("bad chunk")
        texts.append(payload.decode())


def test_text_before_a_failure_is_kept_and_nothing_after_it_is_read() -> None:
    reader = Words()
    assert reader.read([b"data: a", b"", b"data: b", b"data: bad", b"data: c"]) == ["a", "b"]
    assert isinstance(reader.failure, ValueError) and not reader.done
    assert reader.read([b"data: d"]) == []


def test_lines_after_done_are_ignored() -> None:
    reader = Words()
    assert reader.read([b"data: a", b"data: [DONE]", b"data: b"]) == ["a"]
    assert reader.done and reader.failure is None


def test_other_exceptions_are_not_failures_of_the_stream() -> None:
    class Broken(ChunkReader):
        def parse(self, payload: bytes, texts: list[str]) -> None:
            raise KeyError(payload)

    with pytest.raises(KeyError):
        Broken().read([b"data: x"])


async def test_batches_give_each_reads_texts_then_raise_the_failure_after_them() -> None:
    reader = Words()
    got: list[list[str]] = []
    with pytest.raises(ValueError, match="bad chunk"):
        async for texts in reader.batches(
            each([b"data: a\ndata: b\n", b": ping\n", b"data: c\ndata: bad\n"])
        ):
            got.append(texts)
    assert got == [["a", "b"], ["c"]]
