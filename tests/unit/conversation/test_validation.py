"""Request validation: unknown fields, empty text, frame types."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from conversation.api.compat import ApiChatIn, ChatIn, split_words
from conversation.models import (
    CreateSession,
    EditMessage,
    RenameSession,
    SendMessage,
    WsCancel,
    WsFrame,
    WsMessage,
)

FRAME = TypeAdapter[WsFrame](WsFrame)


@pytest.mark.parametrize(
    ("model", "body"),
    [
        (SendMessage, {"content": "hi", "role": "system"}),
        (SendMessage, {"content": ""}),
        (SendMessage, {}),
        (SendMessage, {"content": "hi", "client_message_id": ""}),
        (SendMessage, {"content": "hi", "client_message_id": "x" * 129}),
        (SendMessage, {"content": 5}),
        (EditMessage, {"content": ""}),
        (RenameSession, {"name": ""}),
        (CreateSession, {"name": "x", "modle": "gpt"}),
        (CreateSession, {"model": ""}),
        (RenameSession, {}),
        (RenameSession, {"model": "x" * 201}),
        (ApiChatIn, {"message": "x"}),
        (ChatIn, {"session_id": "x"}),
    ],
)
def test_bad_bodies_are_rejected(model: type[BaseModel], body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        model.model_validate(body)


def test_good_bodies() -> None:
    assert SendMessage.model_validate({"content": "hi", "client_message_id": "c1"}).content == "hi"
    assert CreateSession.model_validate({}).name is None
    assert ChatIn.model_validate({"message": "m"}).session_id is None


def test_websocket_frames_by_type() -> None:
    assert isinstance(FRAME.validate_json('{"type": "cancel"}'), WsCancel)
    message = FRAME.validate_json('{"type": "message", "content": "hi"}')
    assert isinstance(message, WsMessage) and message.content == "hi"
    for bad in ['{"type": "shout"}', '{"type": "message"}', '{"type": "cancel", "x": 1}', "[]"]:
        with pytest.raises(ValidationError):
            FRAME.validate_json(bad)


@pytest.mark.parametrize(
    ("text", "words", "rest"),
    [
        ("", [], ""),
        ("Echo", [], "Echo"),
        ("Echo: ", ["Echo:"], ""),
        ("Echo: hel", ["Echo:"], "hel"),
        ("a  b\nc", ["a", "b"], "c"),
    ],
)
def test_split_words_keeps_an_unfinished_word(text: str, words: list[str], rest: str) -> None:
    assert split_words(text) == (words, rest)
