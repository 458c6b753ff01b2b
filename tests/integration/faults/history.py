"""The recorded history of a fault run: what each client sent and what it was told.

Clients append to it from their own threads; the checker reads it once every client is done.
Times are `time.monotonic()` seconds, comparable with the nemesis's record of when it struck.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Delta:
    offset: int  # the event id: reply characters delivered up to and including this delta
    text: str


@dataclass
class Attempt:
    """One HTTP request of a turn: the first POST, a resend, or a resume."""

    kind: str  # "send" | "resume" | "regenerate"
    target: str  # the base URL it went to
    last_event_id: int | None  # what the client presented (resume)
    outcome: str = ""  # "ended", "broken: <why>", "status <code>", ...


@dataclass
class Terminal:
    event: str  # "done" | "error"
    offset: int  # its event id: the final length
    data: dict[str, Any]

    @property
    def status(self) -> str:
        """The reply's status as the client learnt it (`error`'s code for a failure)."""
        return str(self.data.get("status") if self.event == "done" else self.data.get("code"))


@dataclass
class Reply:
    """One reply to a turn's message: the first, or one that regenerate wrote after it."""

    message_id: str  # from `start`
    start_offset: int = 0
    deltas: list[Delta] = field(default_factory=list)
    terminal: Terminal | None = None
    ended_at: float | None = None

    @property
    def last_offset(self) -> int:
        return self.deltas[-1].offset if self.deltas else self.start_offset

    @property
    def assembled(self) -> str:
        return "".join(d.text for d in self.deltas)


@dataclass
class Turn:
    client: int
    index: int
    session_id: str
    text: str
    sent_at: float
    user_id: str | None = None  # from the `user` event: the message is acknowledged
    acked_at: float | None = None
    replies: list[Reply] = field(default_factory=list)  # the last one is the answer
    attempts: list[Attempt] = field(default_factory=list)
    abandoned: bool = False  # the client walked away from the reply mid-stream

    @property
    def acknowledged(self) -> bool:
        return self.user_id is not None

    @property
    def reply(self) -> Reply | None:
        return self.replies[-1] if self.replies else None

    @property
    def terminal(self) -> Terminal | None:
        return self.replies[-1].terminal if self.replies else None

    @property
    def ended_at(self) -> float | None:
        return self.replies[-1].ended_at if self.replies else None

    @property
    def resumes(self) -> int:
        return sum(1 for a in self.attempts if a.kind == "resume")


@dataclass
class StoredSession:
    """A session's history as read back after the run: the messages, oldest first."""

    session_id: str
    messages: list[dict[str, Any]]


class Recorder:
    """Every client's turns, appended from many threads."""

    def __init__(self, clients: int = 0) -> None:
        self.clients = clients
        self._lock = threading.Lock()
        self.turns: list[Turn] = []
        self._deltas = 0
        self.sessions: dict[str, str] = {}  # session id -> token
        self.client_faults = 0

    def begin(self, turn: Turn) -> Turn:
        with self._lock:
            self.turns.append(turn)
        return turn

    def delta(self, reply: Reply, offset: int, text: str) -> None:
        with self._lock:
            reply.deltas.append(Delta(offset, text))
            self._deltas += 1

    @property
    def deltas_seen(self) -> int:
        with self._lock:
            return self._deltas

    def in_flight(self) -> list[tuple[Turn, Reply]]:
        """The replies that have shown text and not ended yet, with their turns."""
        with self._lock:
            return [
                (t, r)
                for t in self.turns
                if (r := t.reply) is not None and r.deltas and r.terminal is None
            ]

    def ended(self) -> int:
        with self._lock:
            return sum(1 for t in self.turns if t.terminal is not None)

    def acked(self) -> int:
        with self._lock:
            return sum(1 for t in self.turns if t.acknowledged)

    def session(self, session_id: str, token: str) -> None:
        with self._lock:
            self.sessions[session_id] = token

    def fault(self) -> None:
        """A fault a client caused itself (dropping its connection)."""
        with self._lock:
            self.client_faults += 1

    def statuses(self) -> set[str]:
        """How every reply shown ended: done's status or error's code."""
        with self._lock:
            return {r.terminal.status for t in self.turns for r in t.replies if r.terminal}
