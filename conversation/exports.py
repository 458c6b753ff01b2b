"""A chat, or all of a caller's chats, as a download: JSON (chat_documents) or Markdown."""

from __future__ import annotations

from conversation.chat_documents import ChatDocument, ExportBundle, active_path, linear_document
from conversation.store import SessionMeta, Store, utcnow

# What a reply's status means to a reader, for replies that did not end normally.
STOPPED = {
    "streaming": "still being written when exported",
    "cancelled": "stopped by the user",
    "error": "failed",
    "interrupted": "interrupted",
    "length": "cut at the model's length limit",
}


async def chat_document(store: Store, meta: SessionMeta) -> ChatDocument | None:
    """The session as a document; None when it is gone."""
    page = await store.history(meta.session_id)
    if page is None:
        return None
    return linear_document(
        meta.session_id, meta.name, meta.created_at, meta.system_prompt, page.messages
    )


async def bundle(store: Store, sessions: list[SessionMeta]) -> ExportBundle:
    chats = [doc for meta in sessions if (doc := await chat_document(store, meta)) is not None]
    return ExportBundle(exported_at=utcnow(), chats=chats)


def markdown(doc: ChatDocument) -> str:
    """The path the chat shows, for a person to read: a heading per message. Message text is
    Markdown already and goes in as written."""
    lines = [f"# {doc.name}", "", f"_Created {doc.created_at:%Y-%m-%d %H:%M} UTC_", ""]
    if doc.system_prompt:
        lines += ["## System prompt", "", doc.system_prompt, ""]
    for m in active_path(doc):
        lines += [f"## {'You' if m.role == 'user' else 'Assistant'}", "", m.content, ""]
        if m.status in STOPPED:
            lines += [f"_(This reply was {STOPPED[m.status]}.)_", ""]
    return "\n".join(lines)
