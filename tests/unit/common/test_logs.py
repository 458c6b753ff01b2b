"""`common.logs`: one JSON object per line with the request id, text for a terminal, and no
credentials in either, whatever a log line quotes."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from common import logs


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Where `configure` sends the lines; the root logger is restored afterwards."""
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield stream
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_time_level_logger_message_and_request_id(
    captured: io.StringIO,
) -> None:
    logs.configure("json", stream=captured)
    reset = logs.request_id.set("req-7")
    try:
        logging.getLogger("conversation.test").warning("reply %s failed", "abc")
    finally:
        logs.request_id.reset(reset)
    logging.getLogger("conversation.test").info("outside a request")
    first, second = lines(captured)
    assert first["level"] == "WARNING"
    assert first["logger"] == "conversation.test"
    assert first["message"] == "reply abc failed"
    assert first["request_id"] == "req-7"
    assert str(first["time"]).endswith("+00:00")
    assert second["request_id"] is None


def test_an_exception_goes_with_its_line(captured: io.StringIO) -> None:
    logs.configure("json", stream=captured)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("x").exception("it failed")
    (line,) = lines(captured)
    assert line["message"] == "it failed"
    assert "ValueError: boom" in str(line["exception"])


def test_uvicorn_lines_come_out_in_the_same_format(captured: io.StringIO) -> None:
    uvicorn_error = logging.getLogger("uvicorn.error")
    uvicorn_error.addHandler(logging.StreamHandler(io.StringIO()))  # as uvicorn's own config
    uvicorn_error.propagate = False
    logs.configure("json", stream=captured)
    uvicorn_error.warning("Started server process [%d]", 1)
    (line,) = lines(captured)
    assert line["logger"] == "uvicorn.error"


def test_credentials_in_a_line_are_redacted(captured: io.StringIO) -> None:
    logs.configure("json", stream=captured)
    secret = "s3cr3t-T0ken_value"
    log = logging.getLogger("uvicorn.error")
    log.warning('1.2.3.4:5 - "WebSocket /api/sessions/ab/ws?token=%s" [accepted]', secret)
    log.warning("sent Authorization: Bearer %s", secret)
    log.warning("GET /x?a=1&api_key=%s&b=2", secret)
    assert secret not in captured.getvalue()
    assert [line["message"] for line in lines(captured)] == [
        '1.2.3.4:5 - "WebSocket /api/sessions/ab/ws?token=[redacted]" [accepted]',
        "sent Authorization: Bearer [redacted]",
        "GET /x?a=1&api_key=[redacted]&b=2",
    ]


def test_text_lines_have_the_request_id_too(captured: io.StringIO) -> None:
    logs.configure("text", stream=captured)
    reset = logs.request_id.set("req-9")
    try:
        logging.getLogger("assistant").warning("slow ?token=abc")
    finally:
        logs.request_id.reset(reset)
    text = captured.getvalue()
    assert "WARNING assistant [req-9] slow ?token=[redacted]" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_a_second_configure_replaces_the_first(captured: io.StringIO) -> None:
    logs.configure("text", stream=captured)
    logs.configure("json", stream=captured)
    logging.getLogger("x").warning("once")
    assert len(lines(captured)) == 1


def test_a_server_log_turned_off_stays_off(captured: io.StringIO) -> None:
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()  # as uvicorn --no-access-log leaves it
    access.propagate = False
    logs.configure("json", stream=captured)
    access.info('127.0.0.1:1 - "GET / HTTP/1.1" 200')
    assert captured.getvalue() == ""
