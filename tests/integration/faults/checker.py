"""The checker: one pure function from a recorded history and the stored sessions to a report.

Rules (each violation names its rule):
- lost: a user message the client saw acknowledged (`user` event) is missing afterwards.
  After a Redis crash, messages acknowledged within `CrashWindow.window` seconds before the
  kill may be lost (AOF `appendfsync everysec`); they are counted, not violations.
- duplicated: a message stored more than once.
- order: a client's messages stored in another order than it sent them.
- no_terminal / late: an acknowledged turn never got `done`/`error`, or later than `bound`.
- abandoned: a reply whose client walked away mid-stream (and nothing else went wrong) was
  not written to its end: the generation must not depend on its client's connection.
- offsets: delta event ids not contiguous (text repeated, skipped or reordered), or a
  terminal event whose id is not the length the client assembled.
- text: the text a client assembled (resumes included) is not a prefix of the stored reply,
  or not equal to it when the client got `done`; a reply missing or left `streaming`; a
  reply the client regenerated still stored. (Only a turn's last reply is stored; the
  offsets of every reply it was shown are checked.)

One tolerance, the product's documented trade-off: a replica that dies mid-reply has sent its
clients text from memory that its Redis stream may not hold yet (at most
STREAM_UNWATCHED_FLUSH_MS of it); the reply is stored `interrupted` with the stream's text.
For such a reply the stored text may be a prefix of the client's: those characters are
counted as `shown_not_stored`, not violations.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from tests.integration.faults.history import Reply, StoredSession, Turn

ENDED = ("complete", "cancelled", "length", "error", "interrupted")


@dataclass(frozen=True)
class CrashWindow:
    at: float  # monotonic time of the Redis kill
    window: float  # seconds of acknowledgements before it that may be lost

    def covers(self, at: float | None) -> bool:
        return at is not None and self.at - self.window <= at <= self.at


@dataclass(frozen=True)
class Violation:
    rule: str
    turn: str
    detail: str


@dataclass(frozen=True)
class Lost:
    turn: str
    age: float  # seconds between its acknowledgement and the crash (None-free: acked turns)


@dataclass
class Report:
    turns_checked: int = 0
    acknowledged: int = 0
    lost: list[Lost] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    shown_not_stored: int = 0
    at_risk: int = 0  # acknowledged within the crash window: the messages a crash could lose

    @property
    def ok(self) -> bool:
        return not self.violations

    @property
    def max_loss_age(self) -> float:
        return max((lost.age for lost in self.lost), default=0.0)


def name(turn: Turn) -> str:
    return f"client {turn.client} turn {turn.index}"


def check(
    turns: list[Turn],
    stored: dict[str, StoredSession],
    bound: float,
    crash: CrashWindow | None = None,
) -> Report:
    report = Report(turns_checked=len(turns))
    for session in stored.values():
        _check_duplicates(session, report)
    by_session: dict[str, list[Turn]] = {}
    for turn in turns:
        by_session.setdefault(turn.session_id, []).append(turn)
    for sid, own in by_session.items():
        session = stored.get(sid, StoredSession(sid, []))
        messages = {m["id"]: (i, m) for i, m in enumerate(session.messages)}
        _check_order(own, messages, report)
        for turn in own:
            _check_turn(turn, messages, bound, crash, report)
    return report


def _check_duplicates(session: StoredSession, report: Report) -> None:
    # Every turn's text is unique, so a text stored twice is one message stored twice.
    counts = Counter(m["content"] for m in session.messages if m["role"] == "user")
    for content, times in counts.items():
        if times > 1:
            report.violations.append(
                Violation("duplicated", session.session_id, f"stored {times} times: {content!r}")
            )


def _check_order(own: list[Turn], messages: dict[str, tuple[int, Any]], report: Report) -> None:
    positions = [
        (messages[t.user_id][0], t) for t in own if t.user_id is not None and t.user_id in messages
    ]
    for (a, first), (b, second) in pairwise(positions):
        if a >= b:
            report.violations.append(
                Violation("order", name(second), f"stored at {b}, before {name(first)} at {a}")
            )


def _check_turn(
    turn: Turn,
    messages: dict[str, tuple[int, Any]],
    bound: float,
    crash: CrashWindow | None,
    report: Report,
) -> None:
    if not turn.acknowledged:
        return
    report.acknowledged += 1
    assert turn.user_id is not None and turn.acked_at is not None
    if crash is not None and crash.covers(turn.acked_at):
        report.at_risk += 1
    user = messages.get(turn.user_id)
    if user is None or user[1]["content"] != turn.text:
        if crash is not None and crash.covers(turn.acked_at):
            report.lost.append(Lost(name(turn), crash.at - turn.acked_at))
            return  # its reply went with it
        report.violations.append(Violation("lost", name(turn), f"{turn.text!r} not stored"))
    if turn.abandoned:
        pass  # no terminal to expect: the client left; the stored reply is checked below
    elif turn.terminal is None or turn.ended_at is None:
        report.violations.append(Violation("no_terminal", name(turn), "no done or error event"))
    elif turn.ended_at - turn.sent_at > bound:
        took = turn.ended_at - turn.sent_at
        report.violations.append(Violation("late", name(turn), f"ended after {took:.1f} s"))
    _check_offsets(turn, report)
    _check_text(turn, messages, crash, report)


def _check_offsets(turn: Turn, report: Report) -> None:
    for reply in turn.replies:
        _check_reply_offsets(turn, reply, report)


def _check_reply_offsets(turn: Turn, reply: Reply, report: Report) -> None:
    at = reply.start_offset
    for delta in reply.deltas:
        if delta.offset != at + len(delta.text):
            expected = at + len(delta.text)
            report.violations.append(
                Violation(
                    "offsets",
                    name(turn),
                    f"delta {delta.text!r} has id {delta.offset}, expected {expected}",
                )
            )
            return
        at = delta.offset
    end = reply.terminal
    if end is None or end.offset == at:
        return
    if end.status == "interrupted" and end.offset < at:
        report.shown_not_stored += at - end.offset  # the documented loss
        return
    report.violations.append(
        Violation("offsets", name(turn), f"{end.event} has id {end.offset}, client has {at}")
    )


def _check_text(
    turn: Turn,
    messages: dict[str, tuple[int, Any]],
    crash: CrashWindow | None,
    report: Report,
) -> None:
    for replaced in turn.replies[:-1]:
        if replaced.message_id in messages:
            report.violations.append(
                Violation("text", name(turn), f"regenerated reply {replaced.message_id} kept")
            )
    reply = turn.reply
    if reply is None:
        return
    found = messages.get(reply.message_id)
    if found is None:
        if not (crash is not None and crash.covers(turn.ended_at)):
            report.violations.append(Violation("text", name(turn), "reply not stored"))
        return
    stored_reply = found[1]
    stored: str = stored_reply["content"]
    shown = reply.assembled
    if stored_reply["status"] not in ENDED:
        report.violations.append(
            Violation("text", name(turn), f"reply left {stored_reply['status']}")
        )
    if turn.abandoned and stored_reply["status"] != "complete":
        report.violations.append(
            Violation("abandoned", name(turn), f"left reply stored {stored_reply['status']}")
        )
    end = reply.terminal
    if end is not None and end.event == "done":
        if shown != stored or end.data.get("content") != stored:
            if crash is not None and crash.covers(turn.ended_at):
                return
            report.violations.append(
                Violation("text", name(turn), f"done with {shown!r}, stored {stored!r}")
            )
        return
    if stored.startswith(shown):
        return
    if stored_reply["status"] == "interrupted" and shown.startswith(stored):
        return  # counted with the offsets
    report.violations.append(
        Violation("text", name(turn), f"client has {shown!r}, stored {stored!r}")
    )
