"""Nemeses: one fault each, injected while turns are in flight, then healed.

A nemesis says when it strikes (`at`: once a reply is mid-stream, or before the clients
start), what it does (`inject`), how the system is healed (`heal`, now or once the clients are
done), and how many faults it injected (`count`, read after the run: faults that did not
happen are not counted, and a run with none fails).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

from tests.integration.faults.checker import CrashWindow
from tests.integration.faults.history import Recorder
from tests.integration.faults.stack import FaultStack
from tests.support.conversation import kill
from tests.support.metrics import scrape
from tests.support.processes import pause, reload_nginx, restart, resume
from tests.support.servers import Server, wait_until

# AOF `appendfsync everysec`: what a crash may lose is the last second of writes.
AOF_WINDOW = 1.0
# Deltas of a reply (of ~35) its client has seen when its replica is killed: the part its
# replica may not have written to Redis yet is the part at stake.
KILL_AFTER_DELTAS = 10


DONE = ("complete", "cancelled", "length")
# Conversation times each Redis call by script, failed or not: a reply's stream writes and
# its final write.
REDIS_CALLS = "chatstack_redis_latency_seconds_count"
REPLY_WRITES = ("flush", "finish")


def reply_writes(replica: Server) -> float:
    """The reply writes (stream and final) a replica has sent Redis, answered or not."""
    found = scrape(replica)
    return sum(found.value(REDIS_CALLS, command=c) for c in REPLY_WRITES)


def echo(message: str) -> str:
    """The fake model's whole reply to `message`."""
    return f"Echo: {message}"


@dataclass
class Nemesis:
    name: str
    at: Literal["mid_stream", "before"] = "mid_stream"
    heal_late: bool = False  # heal once every client is done, not at once
    disconnect_after: int | None = None  # clients drop each reply after this many deltas
    abandon: bool = False  # ... and leave their first reply for good
    direct: bool = False  # clients send to the replicas themselves, not only through nginx
    recovers: bool = True  # healed in time for every client's last turn to be answered
    crash: CrashWindow | None = field(default=None, init=False)
    note: str = field(default="", init=False)  # what the fault measured, for its figure line

    def ready(self, stack: FaultStack, recorder: Recorder) -> bool:
        """When a `mid_stream` nemesis strikes: a reply has shown text and not ended."""
        return bool(recorder.in_flight())

    def inject(self, stack: FaultStack, recorder: Recorder) -> None:
        raise NotImplementedError

    def heal(self, stack: FaultStack, recorder: Recorder) -> None:
        """Undone by FaultStack.restore by default."""

    def count(self, stack: FaultStack, recorder: Recorder) -> int:
        return 1

    def felt(self, recorder: Recorder) -> bool:
        """Whether the clients' history shows the fault (a test that cannot fail proves
        nothing)."""
        return True


@dataclass
class KillAssistant(Nemesis):
    """assistant SIGKILLed mid-reply, then restarted."""

    def inject(self, stack: FaultStack, recorder: Recorder) -> None:
        kill(stack.assistant)

    def heal(self, stack: FaultStack, recorder: Recorder) -> None:
        stack.assistant = restart(stack.assistant)

    def felt(self, recorder: Recorder) -> bool:
        return "assistant_disconnected" in recorder.statuses()


@dataclass
class AssistantDown(Nemesis):
    """assistant down when the turns are sent; restarted once a turn has failed."""

    at: Literal["mid_stream", "before"] = "before"

    def inject(self, stack: FaultStack, recorder: Recorder) -> None:
        kill(stack.assistant)

    def heal(self, stack: FaultStack, recorder: Recorder) -> None:
        wait_until(lambda: recorder.ended() >= 1, 30, "a turn to fail while assistant is down")
        stack.assistant = restart(stack.assistant)

    def felt(self, recorder: Recorder) -> bool:
        return "assistant_unavailable" in recorder.statuses()


@dataclass
class Upstream(Nemesis):
    """The model server misbehaves for the next requests (scripted in the fake)."""

    behaviour: dict[str, Any] = field(default_factory=dict)
    per_client: int = 1  # requests scripted per client
    # Failures may pile up on one client's regenerations: its last turn may still fail.
    recovers: bool = False

    def inject(self, stack: FaultStack, recorder: Recorder) -> None:
        times = self.per_client * recorder.clients
        stack.fake.script({**self.behaviour, "times": times})

    def count(self, stack: FaultStack, recorder: Recorder) -> int:
        return sum(1 for r in stack.fake.requests() if r["behaviour"])

    def felt(self, recorder: Recorder) -> bool:
        # assistant retries a failure before the first token, but never more than 3 times
        # in all: the scripted failures outnumber what its retries can absorb.
        return any(status not in DONE for status in recorder.statuses())


@dataclass
class RedisCrash(Nemesis):
    """redis-server SIGKILLed mid-reply, restarted from its append-only file once a replica
    writing a reply has failed to write it (so the outage is felt, not slipped through)."""

    def inject(self, stack: FaultStack, recorder: Recorder) -> None:
        replicas = (stack.a, stack.b)
        self.crash = CrashWindow(time.monotonic(), AOF_WINDOW)
        kill(stack.redis)
        # Counted once Redis is dead: every reply write counted from here on has failed.
        before = [reply_writes(r) for r in replicas]

        def reply_write_failed() -> bool:
            return any(reply_writes(r) > n for r, n in zip(replicas, before, strict=True))

        try:
            wait_until(reply_write_failed, 20, "a replica to fail writing a reply")
        finally:
            stack.redis = restart(stack.redis)
        self.note = f"Redis down {time.monotonic() - self.crash.at:.2f} s"


@dataclass
class RedisPause(Nemesis):
    """redis-server frozen (SIGSTOP) while replies stream, thawed once every reply then in
    flight has reached its client whole, from memory: about a second, as long as the
    replicas' generation lease (GENERATION_LEASE=1 in tests), which lapses meanwhile."""

    def inject(self, stack: FaultStack, recorder: Recorder) -> None:
        flying = recorder.in_flight()
        paused_at = time.monotonic()
        pause(stack.redis)
        try:
            wait_until(
                lambda: all(reply.assembled == echo(turn.text) for turn, reply in flying),
                20,
                "the replies in flight to reach their clients while Redis is frozen",
            )
        finally:
            resume(stack.redis)
            self.note = f"Redis frozen {time.monotonic() - paused_at:.2f} s"


@dataclass
class KillReplica(Nemesis):
    """A conversation replica SIGKILLed mid-reply; clients resume on the other one."""

    heal_late: bool = True
    direct: bool = True

    def ready(self, stack: FaultStack, recorder: Recorder) -> bool:
        """A reply sent through replica a has shown a good part of its text."""
        return any(
            turn.attempts[-1].target == stack.a.url and len(reply.deltas) >= KILL_AFTER_DELTAS
            for turn, reply in recorder.in_flight()
        )

    def inject(self, stack: FaultStack, recorder: Recorder) -> None:
        kill(stack.a)

    def heal(self, stack: FaultStack, recorder: Recorder) -> None:
        stack.a = restart(stack.a)

    def felt(self, recorder: Recorder) -> bool:
        return any(t.resumes for t in recorder.turns)


@dataclass
class ReloadNginx(Nemesis):
    """nginx reloaded (SIGHUP) while replies stream through it."""

    def inject(self, stack: FaultStack, recorder: Recorder) -> None:
        reload_nginx(stack.nginx)


@dataclass
class ClientDisconnect(Nemesis):
    """Every client drops its connection mid-reply and resumes from its last event id."""

    disconnect_after: int | None = 5

    def inject(self, stack: FaultStack, recorder: Recorder) -> None:
        pass  # the clients do it

    def count(self, stack: FaultStack, recorder: Recorder) -> int:
        return recorder.client_faults

    def felt(self, recorder: Recorder) -> bool:
        return any(t.resumes for t in recorder.turns)


@dataclass
class ClientAbandons(Nemesis):
    """Every client walks away from its first reply mid-stream and sends its next message:
    the reply it left must still be written to its end and stored."""

    disconnect_after: int | None = 5
    abandon: bool = True

    def inject(self, stack: FaultStack, recorder: Recorder) -> None:
        pass  # the clients do it

    def count(self, stack: FaultStack, recorder: Recorder) -> int:
        return recorder.client_faults

    def felt(self, recorder: Recorder) -> bool:
        # The next message was refused (409) while the left reply was still being written.
        return any(t.abandoned for t in recorder.turns) and any(
            a.outcome.startswith("status 409") for t in recorder.turns for a in t.attempts
        )


def nemeses() -> list[Nemesis]:
    return [
        KillAssistant("assistant-killed-mid-reply"),
        AssistantDown("assistant-down-at-request"),
        Upstream("upstream-429", behaviour={"status": 429}, per_client=3),
        Upstream("upstream-500", behaviour={"status": 500}, per_client=3),
        Upstream("upstream-timeout", behaviour={"stall_after": 3}),
        Upstream("upstream-drop", behaviour={"drop_after": 3}),
        RedisCrash("redis-kill-9-aof-restart"),
        RedisPause("redis-paused"),
        KillReplica("replica-killed-mid-reply"),
        ReloadNginx("nginx-reloaded-mid-stream"),
        ClientDisconnect("client-disconnects"),
        ClientAbandons("client-abandons-a-reply"),
    ]
