"""The checker against hand-made histories: a clean one passes, and each rule catches the
history that breaks it (so the fault tests can fail)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.faults.checker import CrashWindow, Report, check
from tests.integration.faults.history import Delta, Reply, StoredSession, Terminal, Turn

BOUND = 10.0
REPLY = ["Echo: ", "hello ", "there"]
FULL = "".join(REPLY)


def turn(index: int = 0, text: str = "hello there", deltas: list[str] | None = None) -> Turn:
    """A turn that went right: acknowledged, every delta in order, `done` with the reply."""
    t = Turn(0, index, "s", f"{index} {text}", sent_at=100.0 + index)
    t.user_id, t.acked_at = f"u{index}", 100.1 + index
    reply = Reply(f"r{index}")
    at = 0
    for piece in REPLY if deltas is None else deltas:
        at += len(piece)
        reply.deltas.append(Delta(at, piece))
    done = {"id": reply.message_id, "status": "complete", "content": reply.assembled}
    reply.terminal, reply.ended_at = Terminal("done", at, done), 101.0 + index
    t.replies.append(reply)
    return t


def only(t: Turn) -> Reply:
    assert t.reply is not None
    return t.reply


def stored(*turns: Turn, status: str = "complete", content: str = FULL) -> dict[str, StoredSession]:
    messages: list[dict[str, Any]] = []
    for t in turns:
        messages.append({"id": t.user_id, "role": "user", "content": t.text, "status": "complete"})
        messages.append(
            {"id": only(t).message_id, "role": "assistant", "content": content, "status": status}
        )
    return {"s": StoredSession("s", messages)}


def rules(report: Report) -> list[str]:
    return [v.rule for v in report.violations]


def test_a_clean_history_passes() -> None:
    first, second = turn(0), turn(1)
    report = check([first, second], stored(first, second), BOUND)
    assert report.ok, report.violations
    assert (report.turns_checked, report.acknowledged, report.lost) == (2, 2, [])


def test_an_unacknowledged_turn_is_not_held_against_the_system() -> None:
    t = Turn(0, 0, "s", "never acknowledged", sent_at=100.0)
    report = check([t], {"s": StoredSession("s", [])}, BOUND)
    assert report.ok and report.acknowledged == 0


def test_an_acknowledged_message_missing_afterwards_is_lost() -> None:
    t = turn()
    assert rules(check([t], {"s": StoredSession("s", [])}, BOUND)) == ["lost", "text"]


def test_after_a_crash_only_the_window_before_it_may_be_lost() -> None:
    recent, old = turn(0), turn(1)
    crash = CrashWindow(at=recent.acked_at + 0.5, window=1.0)  # type: ignore[operator]
    old.acked_at = crash.at - 3.0
    report = check([recent, old], {"s": StoredSession("s", [])}, BOUND, crash)
    assert [lost.turn for lost in report.lost] == ["client 0 turn 0"]
    assert report.max_loss_age == pytest.approx(0.5)
    assert rules(report) == ["lost", "text"]  # the old one is a violation, with its reply


def test_a_message_stored_twice_is_duplicated() -> None:
    t = turn()
    history = stored(t)
    history["s"].messages.append({**history["s"].messages[0], "id": "other"})
    assert rules(check([t], history, BOUND)) == ["duplicated"]


def test_messages_stored_in_another_order_than_sent() -> None:
    first, second = turn(0), turn(1)
    assert rules(check([first, second], stored(second, first), BOUND)) == ["order"]


def test_a_turn_without_a_terminal_event() -> None:
    t = turn()
    only(t).terminal = only(t).ended_at = None
    assert rules(check([t], stored(t), BOUND)) == ["no_terminal"]


def test_a_terminal_event_later_than_the_bound() -> None:
    t = turn()
    only(t).ended_at = t.sent_at + BOUND + 1
    assert rules(check([t], stored(t), BOUND)) == ["late"]


def test_text_repeated_after_a_resume_breaks_the_offsets() -> None:
    t = turn(deltas=["Echo: ", "hello ", "hello ", "there"])
    only(t).deltas[2].offset = only(t).deltas[1].offset  # the same text sent again
    assert "offsets" in rules(check([t], stored(t), BOUND))


def test_reordered_text_breaks_the_offsets() -> None:
    t = turn()
    deltas = only(t).deltas
    deltas[1], deltas[2] = deltas[2], deltas[1]
    assert "offsets" in rules(check([t], stored(t), BOUND))


def test_a_terminal_id_other_than_the_length_received() -> None:
    t = turn()
    assert t.terminal is not None
    t.terminal.offset += 3
    assert rules(check([t], stored(t), BOUND)) == ["offsets"]


def test_done_with_text_other_than_the_stored_reply() -> None:
    t = turn()
    assert rules(check([t], stored(t, content=FULL + " and more"), BOUND)) == ["text"]


def test_a_failed_reply_whose_text_is_not_a_prefix_of_the_stored_one() -> None:
    t = turn(deltas=["Echo: ", "hullo"])
    only(t).terminal = Terminal("error", only(t).last_offset, {"code": "assistant_error"})
    assert rules(check([t], stored(t, status="error"), BOUND)) == ["text"]


def test_a_reply_left_streaming_or_missing() -> None:
    t = turn()
    only(t).terminal = Terminal("error", len(FULL), {"code": "interrupted"})
    assert rules(check([t], stored(t, status="streaming"), BOUND)) == ["text"]
    history = stored(t)
    history["s"].messages.pop()
    assert rules(check([t], history, BOUND)) == ["text"]


def test_an_interrupted_reply_may_have_shown_text_its_stream_did_not_hold() -> None:
    """The documented loss of a dying writer: counted, not a violation, for `interrupted`
    only; the same gap on a reply that failed any other way is a violation."""
    t = turn()
    only(t).terminal = Terminal("error", len("Echo: "), {"code": "interrupted"})
    report = check([t], stored(t, status="interrupted", content="Echo: "), BOUND)
    assert report.ok, report.violations
    assert report.shown_not_stored == len("hello there")
    only(t).terminal = Terminal("error", len("Echo: "), {"code": "assistant_error"})
    assert "text" in rules(check([t], stored(t, status="error", content="Echo: "), BOUND))


def test_a_regenerated_reply_is_replaced_and_every_reply_shown_is_checked() -> None:
    t = turn()
    failed = Reply("r-old", deltas=[Delta(6, "Echo: ")])
    failed.terminal = Terminal("error", 6, {"code": "assistant_error"})
    t.replies.insert(0, failed)
    assert check([t], stored(t), BOUND).ok
    kept = stored(t)
    kept["s"].messages.append({"id": "r-old", "role": "assistant", "content": "Echo: "})
    assert rules(check([t], kept, BOUND)) == ["text"]
    failed.deltas.append(Delta(6, "again"))
    assert rules(check([t], stored(t), BOUND)) == ["offsets"]


def test_a_reply_its_client_walked_away_from_is_written_to_its_end() -> None:
    t = turn()
    reply = only(t)
    reply.deltas, reply.terminal, reply.ended_at = reply.deltas[:1], None, None
    t.abandoned = True
    assert check([t], stored(t), BOUND).ok
    assert rules(check([t], stored(t, status="cancelled"), BOUND)) == ["abandoned"]
