"""Reading an import file: our own JSON (chat_documents) or ChatGPT's `conversations.json`.

Everything is validated and bounded here, before anything is stored: the file as a whole
(its size, its shape, how many chats) is refused with ImportInvalid naming the field; a chat
that fails on its own becomes a Candidate with a `problem`, reported as skipped while the
others are imported. A chat is imported whole, every branch of it, showing the path it showed
(`current_id`, ChatGPT's `current_node`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from conversation.chat_documents import (
    BUNDLE_SCHEMA,
    CHAT_SCHEMA,
    ChatDocument,
    MessageId,
    active_path,
)
from conversation.config import Settings
from conversation.models import StoredMessage, unicode_text
from conversation.store import new_id, utcnow

FieldErrors = list[dict[str, Any]]


class ImportInvalid(Exception):
    """The file as a whole cannot be imported; `errors` name the fields, as 422s do."""

    def __init__(self, errors: FieldErrors) -> None:
        super().__init__(errors)
        self.errors = errors


class ImportTooLarge(Exception):
    """The file is bigger than IMPORT_MAX_BYTES."""


def field_error(loc: list[str | int], msg: str, kind: str = "value_error") -> FieldErrors:
    return [{"loc": loc, "msg": msg, "type": kind}]


def pydantic_errors(exc: ValidationError, prefix: list[str | int]) -> FieldErrors:
    return [{"loc": [*prefix, *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in exc.errors()]


@dataclass
class Candidate:
    """One chat of the file, ready to store unless `problem` says why not."""

    source: str  # "<format>:<the chat's id in its source>": what makes an import idempotent
    title: str
    created_at: datetime
    system_prompt: str = ""
    messages: list[StoredMessage] = field(default_factory=list)  # parents before children
    active: list[str] = field(default_factory=list)  # the path shown, oldest first
    problem: str | None = None


def parse(raw: bytes, settings: Settings) -> list[Candidate]:
    if len(raw) > settings.import_max_bytes:
        raise ImportTooLarge
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ImportInvalid(field_error(["body"], f"not JSON: {exc}", "json_invalid")) from None
    if isinstance(data, list):
        check_count(len(data), settings)
        return [chatgpt_candidate(item, i, settings) for i, item in enumerate(data)]
    schema = data.get("schema") if isinstance(data, dict) else None
    if schema == CHAT_SCHEMA:
        return [single_candidate(data, settings)]
    if schema == BUNDLE_SCHEMA:
        chats = data.get("chats")
        if not isinstance(chats, list):
            raise ImportInvalid(field_error(["body", "chats"], "must be a list of chats"))
        check_count(len(chats), settings)
        return [our_candidate(c, ["body", "chats", i], settings) for i, c in enumerate(chats)]
    raise ImportInvalid(
        field_error(
            ["body", "schema"],
            f"unknown file: expected our export ('schema': '{CHAT_SCHEMA}' or "
            f"'{BUNDLE_SCHEMA}') or ChatGPT's conversations.json (a list of conversations)",
        )
    )


def check_count(count: int, settings: Settings) -> None:
    if count > settings.import_max_chats:
        raise ImportInvalid(
            field_error(
                ["body"],
                f"holds {count} chats; at most {settings.import_max_chats} are imported at "
                "once: split the file",
            )
        )


def bound_messages(c: Candidate, settings: Settings) -> Candidate:
    """Per-chat bounds: the session's message limits, the length of each message."""
    most, stored = settings.max_messages_per_session, settings.max_stored_messages_per_session
    if most and len(c.active) > most:
        c.problem = f"{len(c.active)} messages; a chat keeps at most {most}"
    if stored and len(c.messages) > stored:
        c.problem = f"{len(c.messages)} messages in all; a chat stores at most {stored}"
    longest = max((len(m.content) for m in c.messages), default=0)
    if longest > settings.import_max_message_chars:
        c.problem = (
            f"a message is {longest} characters long; the limit is "
            f"{settings.import_max_message_chars}"
        )
    if not c.messages and c.problem is None:
        c.problem = "no messages to import"
    return c


def unreadable(
    data: Any, title_field: str, source: str, exc: ValidationError, loc: list[str | int]
) -> Candidate:
    """A chat that failed validation: skipped, naming its first bad field."""
    detail = pydantic_errors(exc, loc)[0]
    where = ".".join(str(p) for p in detail["loc"])
    title = data.get(title_field) if isinstance(data, dict) else None
    return Candidate(
        source=source,
        title=title if isinstance(title, str) else "",
        created_at=utcnow(),
        problem=f"{where}: {detail['msg']}",
    )


# Our own format ------------------------------------------------------------------------


def our_candidate(data: Any, loc: list[str | int], settings: Settings) -> Candidate:
    """A chat of a bundle: one that does not validate is skipped, naming the field."""
    try:
        doc = ChatDocument.model_validate(data)
    except ValidationError as exc:
        source_id = data.get("session_id") if isinstance(data, dict) else None
        return unreadable(data, "name", f"chatstack:{source_id}", exc, loc)
    return document_candidate(doc, settings)


def single_candidate(data: Any, settings: Settings) -> Candidate:
    """A file of one chat: one that does not validate is refused as a whole."""
    try:
        doc = ChatDocument.model_validate(data)
    except ValidationError as exc:
        raise ImportInvalid(pydantic_errors(exc, ["body"])) from None
    return document_candidate(doc, settings)


def document_candidate(doc: ChatDocument, settings: Settings) -> Candidate:
    candidate = Candidate(
        source=f"chatstack:{doc.session_id}",
        title=doc.name,
        created_at=doc.created_at,
        system_prompt=doc.system_prompt,
    )
    if problem := tree_problem(doc):
        candidate.problem = problem
        return candidate
    candidate.messages = [m.stored() for m in doc.messages]
    candidate.active = [m.id for m in active_path(doc)]
    if len(doc.name) > settings.max_name_chars:
        candidate.problem = (
            f"name is {len(doc.name)} characters long; the limit is {settings.max_name_chars}"
        )
        return candidate
    if len(doc.system_prompt) > settings.max_system_prompt_chars:
        candidate.problem = (
            f"system_prompt is {len(doc.system_prompt)} characters long; the limit is "
            f"{settings.max_system_prompt_chars}"
        )
        return candidate
    return bound_messages(candidate, settings)


def tree_problem(doc: ChatDocument) -> str | None:
    """Why the messages are not a tree reaching `current_id`, or None."""
    seen: set[str] = set()
    for i, m in enumerate(doc.messages):
        if m.id in seen:
            return f"messages.{i}.id: {m.id!r} appears twice"
        if m.parent_id is not None and m.parent_id not in seen:
            return f"messages.{i}.parent_id: {m.parent_id!r} is not an earlier message"
        seen.add(m.id)
    if doc.current_id is not None and doc.current_id not in seen:
        return f"current_id: {doc.current_id!r} is not a message of the chat"
    if doc.current_id is None and doc.messages:
        return "current_id: missing, yet the chat has messages"
    return None


# ChatGPT's conversations.json ----------------------------------------------------------


class Lenient(BaseModel):
    """ChatGPT's export carries many fields we do not use; only these are checked."""

    model_config = ConfigDict(extra="ignore")


class GptAuthor(Lenient):
    role: str


class GptContent(Lenient):
    content_type: str = "text"
    parts: list[Any] | None = None
    text: str | None = None


class GptMessage(Lenient):
    id: str
    author: GptAuthor
    content: GptContent | None = None
    create_time: float | None = None
    status: str | None = None
    recipient: str | None = None
    metadata: dict[str, Any] | None = None


class GptNode(Lenient):
    id: str
    message: GptMessage | None = None
    parent: str | None = None
    children: list[str] = []


class GptConversation(Lenient):
    id: str | None = None
    conversation_id: str | None = None
    title: str | None = None
    create_time: float | None = None
    mapping: dict[str, GptNode]
    current_node: str | None = None


def when(seconds: float | None) -> datetime | None:
    if seconds is None:
        return None
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def chatgpt_candidate(item: Any, index: int, settings: Settings) -> Candidate:
    loc: list[str | int] = ["body", index]
    try:
        conv = GptConversation.model_validate(item)
    except ValidationError as exc:
        return unreadable(item, "title", f"chatgpt:#{index}", exc, loc)
    conv_id = conv.conversation_id or conv.id
    title = (conv.title or "").strip()[: settings.max_name_chars] or "Imported chat"
    created = when(conv.create_time) or utcnow()
    candidate = Candidate(f"chatgpt:{conv_id}", title, created)
    if not conv_id:
        candidate.problem = "has neither `conversation_id` nor `id`"
        return candidate
    try:
        unicode_text(title)
    except ValueError as exc:
        candidate.problem = f"title {exc}"
        return candidate
    if len(conv.mapping) > settings.import_max_nodes:
        candidate.problem = (
            f"mapping holds {len(conv.mapping)} nodes; the limit is {settings.import_max_nodes}"
        )
        return candidate
    tree = chatgpt_tree(conv, created)
    if isinstance(tree, str):
        candidate.problem = tree
        return candidate
    candidate.messages, ids = tree
    candidate.active = [ids[n.id] for n in chatgpt_path(conv) if n.id in ids]
    return bound_messages(candidate, settings)


def chatgpt_tree(
    conv: GptConversation, created: datetime
) -> tuple[list[StoredMessage], dict[str, str]] | str:
    """The messages ChatGPT shows, parents before children, each naming as its parent the
    nearest shown message above it; and node id -> message id. A message that cannot be
    read: why. Each node is visited once, so a cycle in the mapping ends the walk."""
    nodes = conv.mapping
    roots = [n.id for n in nodes.values() if n.parent is None or n.parent not in nodes]
    todo: list[tuple[str, str | None]] = [(root, None) for root in reversed(roots)]
    seen: set[str] = set()
    shown: list[StoredMessage] = []
    ids: dict[str, str] = {}
    used: set[str] = set()
    while todo:
        node_id, parent = todo.pop()
        if node_id in seen or node_id not in nodes:
            continue
        seen.add(node_id)
        node = nodes[node_id]
        message = shown_message(node, created)
        if isinstance(message, str):
            return message
        here = parent
        if message is not None:
            if message.id in used:
                message.id = new_id()
            used.add(message.id)
            message.parent = parent
            ids[node_id] = here = message.id
            shown.append(message)
        todo += [(kid, here) for kid in reversed(node.children)]
    return shown, ids


def chatgpt_path(conv: GptConversation) -> list[GptNode]:
    """Root to `current_node` (or, without one, to the newest leaf), following parents;
    bounded by the mapping's size, so a cycle ends the walk."""
    nodes = conv.mapping
    leaf = conv.current_node
    if leaf not in nodes:
        leaves = [n for n in nodes.values() if not n.children]
        leaves.sort(key=lambda n: (n.message.create_time or 0) if n.message else 0)
        leaf = leaves[-1].id if leaves else None
    path: list[GptNode] = []
    seen: set[str] = set()
    while leaf is not None and leaf in nodes and leaf not in seen:
        seen.add(leaf)
        path.append(nodes[leaf])
        leaf = nodes[leaf].parent
    path.reverse()
    return path


def shown_message(node: GptNode, fallback: datetime) -> StoredMessage | str | None:
    """The message as ours, None when ChatGPT does not show it (system prompts, tool calls
    and their results, hidden messages, images without text), or why it cannot be read."""
    m = node.message
    if m is None or m.author.role not in ("user", "assistant") or m.content is None:
        return None
    if m.recipient not in (None, "all"):
        return None
    if (m.metadata or {}).get("is_visually_hidden_from_conversation"):
        return None
    parts = [p for p in (m.content.parts or []) if isinstance(p, str)]
    text = "\n\n".join(parts) if parts else (m.content.text or "")
    if not text.strip():
        return None
    try:
        unicode_text(text)
    except ValueError as exc:
        return f"message {m.id}: {exc}"
    mid = m.id if _valid_id(m.id) else new_id()
    status = "complete" if m.status in (None, "finished_successfully") else "interrupted"
    return StoredMessage(
        id=mid,
        role="user" if m.author.role == "user" else "assistant",
        content=text,
        status=status,
        created_at=when(m.create_time) or fallback,
    )


class _Id(BaseModel):
    id: MessageId


def _valid_id(value: str) -> bool:
    try:
        _Id(id=value)
    except ValidationError:
        return False
    return True
