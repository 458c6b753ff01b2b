"""A chat, or all of a caller's chats, as a download: JSON (chat_documents) or Markdown."""

from __future__ import annotations

from conversation.chat_documents import ChatDocument, ExportBundle, active_path, tree_document
from conversation.store import SessionMeta, Store, utcnow

# What a reply's status means to a reader, for replies that did not end normally.
STOPPED = {
    "streaming": "still being written when exported",
    "cancelled": "stopped by the user",
    "error": "failed",
    "interrupted": "interrupted",
    "length": "cut at the model's length limit",
}


async def chat_document(store: Store, meta: SessionMeta) -> ChatDocument:
    """The session as a document, every branch of it."""
    tree = await store.read_tree(meta.session_id)
    return tree_document(
        meta.session_id,
        meta.name,
        meta.created_at,
        meta.system_prompt,
        tree.messages,
        tree.children,
        tree.active,
    )


async def bundle(store: Store, sessions: list[SessionMeta]) -> ExportBundle:
    chats = [await chat_document(store, meta) for meta in sessions]
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
