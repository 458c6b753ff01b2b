"""Keep a set of processes running: start them, show their output together, restart the ones
that die with a growing delay, give up on one that cannot stay up, stop them all on request.
Standard library only (the local run uses it before anything else is known to work).

Why not supervisord: its backoff (1 s, 2 s, 3 s...) applies only while a program is starting,
a program that dies after `startsecs` comes back at once however often it dies, it shows
output without the program's name, and it signals a program's process group only when it
stops it itself: nginx's workers outlive a master killed with SIGKILL, keep the port, and every
restart of nginx then fails. Here each process leads its own process group, and whatever is
left of the group when its leader exits is killed before the restart.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import ctypes.util
import functools
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

# Seconds a process is given to exit after SIGTERM before it (and its group) gets SIGKILL;
# uvicorn finishes its requests within its --timeout-graceful-shutdown 3.
STOP_TIMEOUT = 10.0
# Seconds between two health checks of a starting process: a poll interval, not a wait.
HEALTH_POLL = 0.2
# Lines of a process's output kept to quote when it is given up on.
LAST_LINES = 8
MAX_LINE = 1 << 20  # bytes of output without a newline shown as one line
PR_SET_PDEATHSIG = 1

HealthCheck = Callable[[], Awaitable[bool]]


@dataclass(frozen=True)
class Program:
    name: str
    command: str  # a bash command line; `exec` in it makes the program the group's leader
    healthy: HealthCheck
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RestartPolicy:
    """A process that dies is started again after `backoff` seconds, doubled for each further
    death in a row (0.5, 1, 2, 4 s...). A healthy run of `stable` seconds or more ends the
    streak, so a process killed once after a long run comes back after `backoff`. After `limit`
    deaths in a row the process is given up on: it cannot stay up, and restarting it only
    hides why."""

    backoff: float
    limit: int
    stable: float = 10.0

    def delay(self, streak: int) -> float:
        return self.backoff * 2.0 ** (streak - 1)


class Output:
    """Every line on one terminal, as `HH:MM:SS name | line`, the names in one column."""

    def __init__(self, names: list[str]) -> None:
        self.width = max(len(name) for name in [*names, "up"])

    def line(self, name: str, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        sys.stdout.write(f"{stamp} {name:<{self.width}} | {text}\n")
        sys.stdout.flush()

    def say(self, text: str) -> None:
        """The supervisor's own messages."""
        self.line("up", text)


@functools.cache
def _die_with_parent() -> Callable[[], None]:
    """A preexec_fn: the kernel sends SIGTERM to the child if the supervisor dies without
    stopping it (kill -9), so no stack is left running unsupervised."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)

    def set_signal() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)

    return set_signal


def describe_exit(code: int) -> str:
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


def kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class _OutputPipe(asyncio.SubprocessProtocol):
    """A program's output, line by line, and its exit, told apart: `exited` is set when the
    process ends, `closed` once nobody holds its output pipe any more."""

    def __init__(self, show: Callable[[str], None], loop: asyncio.AbstractEventLoop) -> None:
        self.show = show
        self.buffer = b""
        self.exited: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        *lines, self.buffer = (self.buffer + data).split(b"\n")
        if len(self.buffer) > MAX_LINE:  # no newline in sight: show what there is
            lines.append(self.buffer)
            self.buffer = b""
        for line in lines:
            self.show(line.decode(errors="replace").rstrip("\r"))

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if self.buffer:
            self.show(self.buffer.decode(errors="replace"))
            self.buffer = b""

    def process_exited(self) -> None:
        self.exited.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class Child:
    """One program's life: start, watch health, restart after a death, until stopped."""

    def __init__(
        self,
        program: Program,
        policy: RestartPolicy,
        output: Output,
        base_env: dict[str, str],
        on_give_up: Callable[[Child], None],
        stopping: asyncio.Event,
    ) -> None:
        self.program = program
        self.policy = policy
        self.output = output
        self.env = {**base_env, **program.env}
        self.on_give_up = on_give_up
        self.stopping = stopping
        self.healthy = asyncio.Event()  # set while the current run has passed its check
        self.pid: int | None = None  # while the current run's process lives
        self.last_lines: collections.deque[str] = collections.deque(maxlen=LAST_LINES)
        self.streak = 0
        self.started_at = 0.0  # monotonic time of the current run's start
        self.healthy_since = 0.0  # and of its first passed health check
        self._preexec = _die_with_parent()

    @property
    def name(self) -> str:
        return self.program.name

    async def run(self) -> None:
        while not self.stopping.is_set():
            code, healthy_for = await self._run_once()
            if self.stopping.is_set():
                break
            ran = time.monotonic() - self.started_at
            # Counted from its health, not its start: a model that fails after loading for a
            # minute is still failing.
            self.streak = 1 if healthy_for >= self.policy.stable else self.streak + 1
            what = f"{self.name} {describe_exit(code)} after {ran:.1f}s"
            if self.streak >= self.policy.limit:
                self.output.say(
                    f"{what}: it died {self.streak} times in a row without staying healthy for"
                    f" {self.policy.stable:g}s; giving up on it (RESTART_LIMIT). Its last lines:"
                )
                for line in self.last_lines:
                    self.output.say(f"  {line}")
                self.on_give_up(self)
                return
            delay = self.policy.delay(self.streak)
            self.output.say(
                f"{what}; restarting it in {delay:g}s"
                f" (death {self.streak} of {self.policy.limit} in a row before giving up)"
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)

    async def _run_once(self) -> tuple[int, float]:
        """Start the program, watch it until it exits, clean up its group; its exit code and
        the seconds it was healthy."""
        self.started_at = time.monotonic()
        loop = asyncio.get_running_loop()
        pipe = _OutputPipe(self._show, loop)
        transport, _ = await loop.subprocess_exec(
            lambda: pipe,
            "bash",
            "-c",
            self.program.command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=self.env,
            start_new_session=True,  # its own group: signals reach its children too
            preexec_fn=self._preexec,
        )
        pid = transport.get_pid()
        self.pid = pid
        self.output.say(f"{self.name} started (pid={pid})")
        if self.stopping.is_set():  # the stop's SIGTERM went out while this one was starting
            self.signal(signal.SIGTERM)
        watch = asyncio.create_task(self._watch_health())
        await pipe.exited
        self.pid = None
        watch.cancel()
        healthy_for = time.monotonic() - self.healthy_since if self.healthy.is_set() else 0.0
        self.healthy.clear()
        # Its children (nginx workers, a redis rewrite) must not outlive it: they would hold
        # its port and make every restart fail. They also hold its output pipe, which is why
        # the exit is taken from the process, not from the pipe's end.
        kill_group(pid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(pipe.closed), 2)
        code = transport.get_returncode()
        transport.close()
        assert code is not None
        return code, healthy_for

    def _show(self, text: str) -> None:
        self.last_lines.append(text)
        self.output.line(self.name, text)

    async def _watch_health(self) -> None:
        while True:
            if await self.program.healthy():
                break
            await asyncio.sleep(HEALTH_POLL)
        self.healthy_since = time.monotonic()
        self.healthy.set()
        since = self.healthy_since - self.started_at
        self.output.say(f"{self.name} is healthy ({since:.1f}s after its start)")

    def signal(self, sig: signal.Signals) -> None:
        if self.pid is not None:
            kill_group(self.pid, sig)


class Supervisor:
    """The programs in start order; stopped in reverse order, one kind at a time, so nginx
    stops taking requests first and Redis outlives the replies conversation still stores."""

    def __init__(
        self,
        programs: list[Program],
        policy: RestartPolicy,
        on_give_up: Callable[[Child], None],
    ) -> None:
        self.output = Output([p.name for p in programs])
        self.stopping = asyncio.Event()
        env = dict(os.environ)
        self.children = [
            Child(p, policy, self.output, env, on_give_up, self.stopping) for p in programs
        ]
        self.tasks: dict[Child, asyncio.Task[None]] = {}

    def start(self) -> None:
        for child in self.children:
            self.tasks[child] = asyncio.create_task(child.run())

    async def stop(self, force: asyncio.Event) -> None:
        """SIGTERM each kind in turn; SIGKILL after STOP_TIMEOUT, or at once once `force`
        is set (a second Ctrl-C)."""
        self.stopping.set()
        for kind in reversed(self.kinds()):
            group = [c for c in self.children if kind_of(c.name) == kind]
            for child in group:
                child.signal(signal.SIGTERM)
            waiting = [self.tasks[c] for c in group if c in self.tasks]
            if waiting:
                stopped: asyncio.Future[Any] = asyncio.gather(*waiting)
                forced: asyncio.Future[Any] = asyncio.create_task(force.wait())
                await asyncio.wait(
                    [stopped, forced], timeout=STOP_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
                )
                forced.cancel()
                for child in group:
                    child.signal(signal.SIGKILL)
                await stopped
            for child in group:
                self.output.say(f"{child.name} stopped")

    def kinds(self) -> list[str]:
        return list(dict.fromkeys(kind_of(c.name) for c in self.children))


def kind_of(name: str) -> str:
    """conversation.2 -> conversation: replicas of one program stop together."""
    return name.partition(".")[0]
