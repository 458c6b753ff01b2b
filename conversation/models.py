"""Request, response and event models of the Conversation API.

Requests reject unknown fields so a typo in a client is a clear 422, not silently ignored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from common.protocol import Usage
from conversation.catalogue import ModelInfo

Role = Literal["user", "assistant"]
# complete: finished normally; streaming: being written now (resume it);
# cancelled: stopped by a user, partial text kept; error: assistant failed, partial text kept;
# interrupted: the replica writing it died, partial text kept; length: the model stopped at
# its token limit (Continue asks for more).
Status = Literal["complete", "streaming", "cancelled", "error", "interrupted", "length"]
# Replies that may be continued: their text ends where something stopped it, not the model.
CONTINUABLE: frozenset[str] = frozenset({"length", "cancelled", "interrupted"})


def unicode_text(value: str) -> str:
    """JSON may carry lone UTF-16 surrogates ("\\ud800"): not text, and not storable."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(
            "contains a lone UTF-16 surrogate (\\ud800-\\udfff), which is not valid Unicode"
        ) from None
    return value


AnyText = Annotated[str, AfterValidator(unicode_text)]
Text = Annotated[AnyText, StringConstraints(strip_whitespace=False, min_length=1)]
ClientMessageId = Annotated[AnyText, StringConstraints(min_length=1, max_length=128)]
# A model id of assistant's catalogue (checked against it by the route).
ModelId = Annotated[AnyText, StringConstraints(min_length=1, max_length=200)]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateSession(Request):
    name: AnyText | None = None
    system_prompt: AnyText | None = None
    model: ModelId | None = None  # None: assistant's default


class RenameSession(Request):
    """Rename the chat, change its model, or both."""

    name: Text | None = None
    model: ModelId | None = None

    @model_validator(mode="after")
    def name_or_model(self) -> RenameSession:
        if self.name is None and self.model is None:
            raise ValueError("give `name`, `model` or both")
        return self


class SendMessage(Request):
    content: Text
    client_message_id: ClientMessageId | None = None


class EditMessage(Request):
    content: Text


class Regenerate(Request):
    # The reply to write again, on the active path (none: the last reply).
    message_id: Annotated[AnyText, StringConstraints(min_length=1, max_length=64)] | None = None
    model: ModelId | None = None  # another model for this reply only (None: the chat's)


class SwitchBranch(Request):
    """Which version to show: the message's sibling at this 1-based position (as
    `sibling_index` counts them); none: the message in the path itself."""

    sibling_index: Annotated[int, Field(ge=1)] | None = None


class Message(BaseModel):
    id: str
    role: Role
    content: str
    status: Status
    created_at: datetime


class ErrorInfo(BaseModel):
    code: str
    message: str


class SessionMessage(Message):
    """A message as `GET /api/sessions/{id}` returns it: with why it failed, if it did, so a
    page that reloads tells "the model is loading" from any other failure; a reply with the
    model that wrote it (as assistant reported it) and its usage (when reported)."""

    error: ErrorInfo | None = None
    model: str | None = None
    usage: Usage | None = None
    # Its position among the versions of this message (its parent's children, oldest
    # first), 1-based, and how many there are: switch with PATCH .../messages/{id}/active.
    sibling_index: int = 1
    sibling_count: int = 1


class StoredMessage(Message):
    """A message as kept in Redis: the public fields plus what replay and context need."""

    model: str | None = None
    usage: Usage | None = None
    # Token count when the model reported it; context budgeting estimates the rest.
    tokens: int | None = None
    error: ErrorInfo | None = None
    # The message before it on its path (none: the first message); written by the scripts.
    parent: str | None = None

    def public(self) -> Message:
        return Message(
            id=self.id,
            role=self.role,
            content=self.content,
            status=self.status,
            created_at=self.created_at,
        )

    def in_session(self, sibling_index: int = 1, sibling_count: int = 1) -> SessionMessage:
        message = SessionMessage.model_validate(self, from_attributes=True)
        message.sibling_index, message.sibling_count = sibling_index, sibling_count
        return message


class SessionSummary(BaseModel):
    session_id: str
    name: str
    created_at: datetime
    expires_at: datetime
    model: str | None = None  # None: assistant's default
    named_by_user: bool = False  # renamed by a person: no generated title replaces it


class SessionCreated(SessionSummary):
    token: str


class SessionDetail(SessionSummary):
    messages: list[SessionMessage]
    has_more: bool = False  # older messages exist: page with `before`
    has_newer: bool = False  # newer messages exist (a page read with `after` or `around`)


class SessionList(BaseModel):
    sessions: list[SessionSummary]


class ModelCatalogue(BaseModel):
    """`GET /api/models`: the models a chat may use."""

    models: list[ModelInfo]
    default: str | None


class ModelUsage(BaseModel):
    """Tokens spent by replies of one model. `estimated_tokens`: the part of the counts
    estimated (about four bytes a token) for replies assistant reported no usage for (a
    cancelled or failed one, mostly)."""

    model: str
    replies: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    estimated_tokens: int = 0


class DayUsage(BaseModel):
    date: str  # YYYY-MM-DD, UTC
    models: list[ModelUsage]


class UsageReport(BaseModel):
    """`GET /api/usage`: the caller's own usage, newest day first, today included."""

    # Whose: a browser (its cookie), a session (its Bearer token), or a chat (its own path).
    client: Literal["browser", "session", "chat"]
    days: list[DayUsage]


class Health(BaseModel):
    status: str = "success"
    message: str = "The server is up and running."


class Readiness(BaseModel):
    """`GET /api/health/ready`: whether a message sent now would get a reply."""

    status: Literal["ready", "starting", "unavailable"]
    # loading: assistant answers but its model is not in memory yet; failed: its model could
    # not be loaded (see assistant's logs); unreachable: no answer from assistant at all.
    assistant: Literal["ready", "loading", "failed", "unreachable"]
    message: str | None = None


# Event payloads: the same JSON in SSE `data:` and in WebSocket frames.


class StartEvent(BaseModel):
    message_id: str


class QueuedEvent(BaseModel):
    """Before the first delta: the model is busy and `position` requests wait before this."""

    position: int


class DeltaEvent(BaseModel):
    text: str


class DoneEvent(Message):
    model: str | None = None
    usage: Usage | None = None


class ErrorEvent(ErrorInfo):
    pass


# WebSocket frames from the client.


class WsMessage(Request):
    type: Literal["message"]
    content: Text
    client_message_id: ClientMessageId | None = None


class WsCancel(Request):
    type: Literal["cancel"]


WsFrame = Annotated[WsMessage | WsCancel, Field(discriminator="type")]
