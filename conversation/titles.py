"""A chat's title, written by a model in the background after its first reply.

It replaces the first message's title unless a person renamed the chat (the store's
`set_title` checks that in the same step that writes it). Whatever happens here (a model
that fails, is slow, or answers nonsense) only leaves the old title: never the chat's
business, so failures are logged and dropped.
"""

from __future__ import annotations

import asyncio
import logging

from common.protocol import ChatMessage
from conversation.assistant_client import AssistantCallError, AssistantClient
from conversation.catalogue import Catalogue
from conversation.config import Settings
from conversation.metrics import ConversationMetrics
from conversation.store import Store

log = logging.getLogger(__name__)

MAX_TITLE_CHARS = 60
# Enough of the exchange to tell what it is about, and a prompt even a small model handles.
EXCERPT_CHARS = 1000
TITLE_MAX_TOKENS = 24
# What small models wrap a title in: quotes, Markdown emphasis or a heading mark.
QUOTES = "\"'`*# \u201c\u201d\u2018\u2019"
INSTRUCTION = (
    "Write a title of at most six words for the conversation below. "
    "Answer with the title only: no quotes, no punctuation at the end."
)


def clean_title(text: str) -> str:
    """The model's answer as a title: its first line, without quotes, a `Title:` label or
    trailing punctuation, at most MAX_TITLE_CHARS (cut at a word)."""
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    if line.lower().startswith("title:"):
        line = line[len("title:") :].strip()
    line = line.strip(QUOTES).rstrip(QUOTES + ".!:;,")
    if len(line) > MAX_TITLE_CHARS:
        head = line[: MAX_TITLE_CHARS + 1]
        cut = head.rsplit(" ", 1)[0] if " " in head else ""
        line = (cut if len(cut) >= MAX_TITLE_CHARS // 2 else line[:MAX_TITLE_CHARS]).rstrip()
    return line


def title_prompt(question: str, answer: str) -> list[ChatMessage]:
    exchange = f"User: {question[:EXCERPT_CHARS]}\n\nAssistant: {answer[:EXCERPT_CHARS]}"
    return [
        ChatMessage(role="system", content=INSTRUCTION),
        ChatMessage(role="user", content=exchange),
    ]


class Titles:
    """This process's title jobs: at most one per chat at a time, cancelled at shutdown."""

    def __init__(
        self,
        store: Store,
        assistant: AssistantClient,
        catalogue: Catalogue,
        settings: Settings,
        metrics: ConversationMetrics,
    ) -> None:
        self.store = store
        self.assistant = assistant
        self.catalogue = catalogue
        self.settings = settings
        self.metrics = metrics
        self._jobs: dict[str, asyncio.Task[None]] = {}

    def start(self, session_id: str, chat_model: str | None, question: str, answer: str) -> None:
        if session_id in self._jobs:
            return
        task = asyncio.create_task(
            self._title(session_id, chat_model, question, answer), name=f"title-{session_id}"
        )
        self._jobs[session_id] = task
        task.add_done_callback(lambda _: self._jobs.pop(session_id, None))

    async def _title(self, sid: str, chat_model: str | None, question: str, answer: str) -> None:
        s = self.settings
        try:
            model = await self.catalogue.title_model(s.title_model, chat_model)
            async with asyncio.timeout(s.title_timeout):
                text = await self.assistant.complete(
                    title_prompt(question, answer), model, TITLE_MAX_TOKENS
                )
            title = clean_title(text)
            if not title:
                outcome = "failed"
                log.info("no title for session %s: the model answered none", sid)
            elif await self.store.set_title(sid, title):
                outcome = "titled"
            else:
                outcome = "kept"
                log.info("session %s was renamed or deleted meanwhile: title dropped", sid)
        except (AssistantCallError, TimeoutError) as exc:
            outcome = "failed"
            log.info("no title for session %s: %s", sid, exc)
        except Exception:
            outcome = "failed"
            log.warning("titling session %s failed", sid, exc_info=True)
        self.metrics.titles.labels(outcome).inc()

    async def stop(self) -> None:
        jobs = list(self._jobs.values())
        for task in jobs:
            task.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
