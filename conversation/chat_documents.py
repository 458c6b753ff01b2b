"""The JSON a chat is exported as and imported from: schema `chatstack.chat/v1`.

A chat is a tree of messages (each names its `parent_id`; `current_id` is the leaf of the
path the chat shows), so a chat with branches and a linear one share one shape. Documented in
conversation/README.md ("Export and import"); a change that old files cannot satisfy gets a
new version.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from common.protocol import Usage
from conversation.models import AnyText, ErrorInfo, Role, Status, StoredMessage

CHAT_SCHEMA: Final = "chatstack.chat/v1"
BUNDLE_SCHEMA: Final = "chatstack.export/v1"

# Ids end up in URLs and Redis hash fields: a safe alphabet, bounded.
MessageId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChatMessage(Strict):
    id: MessageId
    parent_id: MessageId | None
    role: Role
    content: AnyText
    status: Status
    created_at: datetime
    model: Annotated[str, StringConstraints(max_length=200)] | None = None
    usage: Usage | None = None
    error: ErrorInfo | None = None

    def stored(self) -> StoredMessage:
        """As kept in Redis. A reply exported mid-stream has no writer any more."""
        status: Status = "interrupted" if self.status == "streaming" else self.status
        fields = self.model_dump(exclude={"parent_id"}, exclude_none=True)
        return StoredMessage.model_validate({**fields, "status": status, "parent": self.parent_id})


class ChatDocument(Strict):
    schema_: Literal["chatstack.chat/v1"] = Field(CHAT_SCHEMA, alias="schema")
    session_id: MessageId
    name: Annotated[AnyText, StringConstraints(max_length=1000)]
    created_at: datetime
    system_prompt: AnyText = ""
    current_id: MessageId | None  # the leaf of the path the chat shows; None: no messages
    messages: list[ChatMessage]  # parents before their children

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ExportBundle(Strict):
    schema_: Literal["chatstack.export/v1"] = Field(BUNDLE_SCHEMA, alias="schema")
    exported_at: datetime
    chats: list[ChatDocument]

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def message_of(stored: StoredMessage, parent_id: str | None) -> ChatMessage:
    return ChatMessage(
        id=stored.id,
        parent_id=parent_id,
        role=stored.role,
        content=stored.content,
        status=stored.status,
        created_at=stored.created_at,
        model=getattr(stored, "model", None),
        usage=stored.usage,
        error=stored.error,
    )


def tree_document(
    session_id: str,
    name: str,
    created_at: datetime,
    system_prompt: str,
    messages: dict[str, StoredMessage],
    children: dict[str, list[str]],
    active: list[str],
) -> ChatDocument:
    """A chat's every message, parents before children (each parent's children oldest
    first), from its tree: `children` maps a parent id ("" for the first messages) to its
    children's ids."""
    ordered: list[ChatMessage] = []
    todo = [("", kid) for kid in reversed(children.get("", []))]
    while todo:
        parent, mid = todo.pop()
        if mid in messages:
            ordered.append(message_of(messages[mid], parent or None))
            todo += [(mid, kid) for kid in reversed(children.get(mid, []))]
    return ChatDocument(
        session_id=session_id,
        name=name,
        created_at=created_at,
        system_prompt=system_prompt,
        current_id=active[-1] if active else None,
        messages=ordered,
    )


def active_path(doc: ChatDocument) -> list[ChatMessage]:
    """The messages from the root to `current_id`, oldest first ([] without one)."""
    by_id = {m.id: m for m in doc.messages}
    path: list[ChatMessage] = []
    at = doc.current_id
    while at is not None and at in by_id and len(path) <= len(by_id):
        path.append(by_id[at])
        at = by_id[at].parent_id
    path.reverse()
    return path
