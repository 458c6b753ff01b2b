"""When a reply's writer writes its new text to the reply's Redis Stream: the one place that
says why.

Clients of the writing replica get every token from memory, at once. The stream serves the
others: a resume on another replica, a cancel waiting for the end, a history read mid-reply,
and the recovery of a dead writer's reply. So:

- The first text is written at once: a dead writer's reply keeps its start, and the writer
  learns at once whether someone already tails the stream (each write's answer says so).
- While someone tails the stream from Redis, new text is written at once, at most every
  STREAM_FLUSH_MS (counted from the end of the previous write, so Redis too sees the writes
  that far apart).
- Otherwise new text waits until its oldest part is STREAM_UNWATCHED_FLUSH_MS (1 s) old:
  each write's envelope (EVALSHA, script sha, stream key, end offset: ~120 bytes) costs
  Redis more than a quarter second of text, and nobody is reading.
- A write carries the stream's expiry only with the first text, then each half of the
  retention (a reply may stream longer than STREAM_RETENTION); it renews the generation's
  lease (and the client's limit slots) only each third of GENERATION_LEASE, writing nothing
  else when no text is waiting.
- A write that fails keeps its text for the next one, which comes soon enough for the lease
  (it lasts three renewal periods) but not in a tight loop (Redis may be down).

What it costs and risks, at 50 tokens/s (~290 characters/s): Redis receives ~2.4 bytes per
byte of reply (the text once in the stream, once in the history, ~0.4 for envelopes); a
replica dying mid-reply loses at most the last second of text (the reply is kept,
`interrupted`); a history read mid-reply lags by up to a second; a resume on another replica
gets its first text up to a second late, then every STREAM_FLUSH_MS.

The class is pure (times in, decisions out, on the event loop's clock): the generation's
write loop asks it when to write and what the write carries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from conversation.config import Settings


@dataclass(frozen=True, slots=True)
class Write:
    """What one stream write carries besides the text waiting."""

    expire: bool  # the stream's expiry (only ever with text: it may create the stream)
    renew: bool  # the generation's lease, and the client's limit slots


@dataclass(slots=True)
class FlushSchedule:
    watched_gap: float  # STREAM_FLUSH_MS: the shortest time between writes
    unwatched_age: float  # STREAM_UNWATCHED_FLUSH_MS, never below the gap
    refresh_expire: float  # half the stream's expiry
    renew_every: float  # a third of the lease
    renew_due: float
    expire_due: float
    watched: bool = False  # someone tails the stream, as the last write learnt
    last_write: float = -math.inf  # when the last write (or failed attempt) ended

    @classmethod
    def start(cls, settings: Settings, now: float) -> FlushSchedule:
        """The schedule of a generation starting at `now`: the turn's start has just taken
        the lease; the expiry goes with the first text."""
        # What the store sets: a stream never outlives its session.
        retention = min(settings.stream_retention, settings.session_ttl)
        return cls(
            watched_gap=settings.stream_flush_ms / 1000,
            unwatched_age=max(settings.stream_unwatched_flush_ms, settings.stream_flush_ms) / 1000,
            refresh_expire=retention / 2,
            renew_every=settings.generation_lease / 3,
            renew_due=now + settings.generation_lease / 3,
            expire_due=now,
        )

    def next_write(self, now: float, text_waiting: bool) -> float | None:
        """When to write, woken at `now` by new text or by the renewal's time; None: nothing
        is due (woken for text an earlier write already carried)."""
        # Due within the next write's gap counts as due: timers may fire a hair early.
        if not text_waiting and now + self.watched_gap < self.renew_due:
            return None
        write_at = self.renew_due
        if text_waiting:
            hurry = self.watched or self.last_write == -math.inf
            write_at = min(write_at, now + (0 if hurry else self.unwatched_age))
        return max(write_at, self.last_write + self.watched_gap)

    def plan(self, now: float, text_waiting: bool) -> Write:
        """What the write made at `now` carries."""
        return Write(
            expire=text_waiting and now >= self.expire_due,
            renew=now + self.watched_gap >= self.renew_due,
        )

    def written(self, write: Write, began: float, ended: float, watched: bool) -> None:
        """The write planned at `began` succeeded at `ended`; `watched`: its answer."""
        self.watched, self.last_write = watched, ended
        if write.expire:
            self.expire_due = began + self.refresh_expire
        if write.renew:
            self.renew_due = began + self.renew_every

    def failed(self, began: float, ended: float) -> None:
        """The write planned at `began` failed at `ended`: try again, lease included."""
        self.renew_due = began + min(self.renew_every, self.unwatched_age)
        self.last_write = ended  # spaced like writes, however fast text arrives
