"""The abusive client: one address spending everything it can, through nginx, in its own
process (another machine, as far as the product can tell), bounded in count and in time.

From its own loopback address (nginx sees it as a client of its own, as it would see a
machine elsewhere) it runs side by side, until told to stop or its time runs out:
- `sockets` WebSocket loops: each opens a socket on one of its sessions and sends frames as
  fast as it can (long messages asking for endless replies, binary frames, or one frame past
  the size cap, by loop), and reopens at once whatever closed it;
- `streams` SSE loops posting long messages (each reply as long as the model will write) and
  reading them to their end;
- `creators` loops creating sessions, whose tokens the other loops then use, so no
  per-session limit holds it: only the address's own ones do;
- a burst of `burst` HTTP requests at once when it starts.
Every refusal is counted by what it was (a status, a close code, an error frame's code) and
ignored: the abuser retries at once. What it counted goes back to the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import multiprocessing as mp
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event as MpEvent
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.typing import Subprotocol

from tests.support.servers import wait_until

# Words the fake model echoes one token at a time: a reply longer than the model's token cap
# (assistant's OPENAI_MAX_TOKENS), so it ends only at the cap.
ENDLESS = " ".join(["more"] * 1500)
# Past conversation's frame cap (4 bytes per MAX_MESSAGE_CHARS, 8,000, plus 1 KiB).
OVERSIZE = "x" * 40_000
TIMEOUT = httpx.Timeout(10.0, connect=3.0)


@dataclass(frozen=True)
class Plan:
    url: str  # nginx, http://127.0.0.1:port
    address: str  # the abuser's own source address
    seconds: float  # it stops by itself after this long
    sockets: int
    streams: int
    creators: int
    burst: int
    sessions: int  # created before the flood starts, for the loops to share
    # What the sockets send, by turns: message frames (each asking for a reply), binary
    # frames, or frames past the size cap.
    kinds: tuple[str, ...] = ("message", "message", "message", "message", "binary", "oversize")


async def refused_by(r: httpx.Response) -> str:
    """Who refused a 429: nginx (requests per second or connections of the address) or
    conversation (the client's limits); nginx's answer names the address."""
    if r.status_code != 429:
        return ""
    return " (nginx)" if b"from this address" in await r.aread() else " (conversation)"


class Abuser:
    def __init__(self, plan: Plan, stop: MpEvent) -> None:
        self.plan = plan
        self.stop = stop
        self.deadline = time.monotonic() + plan.seconds
        self.counts: Counter[str] = Counter()
        self.sessions: list[tuple[str, str]] = []  # (session id, token)
        self._next = itertools.count()
        transport = httpx.AsyncHTTPTransport(local_address=plan.address, retries=0)
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=200)
        self.http = httpx.AsyncClient(
            base_url=plan.url, transport=transport, timeout=TIMEOUT, limits=limits
        )

    def running(self) -> bool:
        return not self.stop.is_set() and time.monotonic() < self.deadline

    def session(self) -> tuple[str, str]:
        return self.sessions[next(self._next) % len(self.sessions)]

    def failed(self, where: str, exc: Exception) -> None:
        self.counts[f"{where} {type(exc).__name__}"] += 1

    async def create_session(self) -> None:
        try:
            r = await self.http.post("/api/sessions", json={})
        except httpx.HTTPError as exc:
            self.failed("POST /api/sessions", exc)
            return
        self.counts[f"POST /api/sessions {r.status_code}{await refused_by(r)}"] += 1
        if r.status_code == 201:
            data = r.json()
            self.sessions.append((data["session_id"], data["token"]))

    async def creator(self) -> None:
        while self.running():
            await self.create_session()

    async def burst(self) -> None:
        async def one(i: int) -> None:
            session, token = self.session()
            path = f"/api/sessions/{session}" if i % 2 else "/api/health/ready"
            try:
                r = await self.http.get(path, headers={"Authorization": f"Bearer {token}"})
                self.counts[f"burst GET {r.status_code}"] += 1
            except httpx.HTTPError as exc:
                self.failed("burst GET", exc)

        await asyncio.gather(*(one(i) for i in range(self.plan.burst)))

    async def stream(self) -> None:
        body = {"content": ENDLESS}
        while self.running():
            session, token = self.session()
            headers = {"Authorization": f"Bearer {token}"}
            try:
                async with self.http.stream(
                    "POST", f"/api/sessions/{session}/messages", json=body, headers=headers
                ) as r:
                    self.counts[f"POST messages {r.status_code}{await refused_by(r)}"] += 1
                    async for line in r.aiter_lines():
                        if line.startswith(("event: start", "event: error")):
                            self.counts[f"SSE {line.removeprefix('event: ')} event"] += 1
                        if not self.running():
                            break
            except httpx.HTTPError as exc:
                self.failed("POST messages", exc)

    async def socket(self, kind: str) -> None:
        host = self.plan.url.removeprefix("http://")
        while self.running():
            session, token = self.session()
            try:
                async with connect(
                    f"ws://{host}/api/sessions/{session}/ws",
                    subprotocols=[Subprotocol("bearer"), Subprotocol(token)],
                    local_addr=(self.plan.address, 0),
                    compression=None,
                    open_timeout=5,
                    max_size=None,
                ) as ws:
                    self.counts["ws opened"] += 1
                    await self.flood(ws, kind)
            except InvalidStatus as exc:
                self.counts[f"ws upgrade {exc.response.status_code}"] += 1
            except ConnectionClosed as exc:
                self.closed(exc)
            except (WebSocketException, OSError, TimeoutError) as exc:
                self.failed("ws", exc)

    def closed(self, exc: ConnectionClosed) -> None:
        self.counts[f"ws closed {exc.rcvd.code if exc.rcvd else 'without a close frame'}"] += 1

    async def flood(self, ws: ClientConnection, kind: str) -> None:
        reader = asyncio.create_task(self.read(ws))
        frames: dict[str, str | bytes] = {
            "message": orjson.dumps({"type": "message", "content": ENDLESS}).decode(),
            "oversize": OVERSIZE,
            "binary": b"\x00binary",
        }
        frame = frames[kind]
        try:
            while self.running() and not reader.done():
                await ws.send(frame)
                self.counts[f"ws {kind} frames sent"] += 1
                # Lets the reader take the frames (and the close) that came meanwhile, as a
                # flooder's event loop would between writes; paces nothing.
                await asyncio.sleep(0)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def read(self, ws: ClientConnection) -> None:
        try:
            async for frame in ws:
                data = orjson.loads(frame)
                if data["event"] == "error":
                    self.counts[f"ws error frame {data['data']['code']}"] += 1
                elif data["event"] == "start":
                    self.counts["ws start frame"] += 1
        except ConnectionClosed as exc:
            self.closed(exc)
            return
        if ws.close_code is not None:
            self.counts[f"ws closed {ws.close_code}"] += 1

    async def run(self, ready: MpEvent) -> Counter[str]:
        try:
            for _ in range(self.plan.sessions):
                await self.create_session()
            if not self.sessions:
                raise RuntimeError(f"the abuser could not create a session: {self.counts}")
            await self.burst()
            kinds = self.plan.kinds
            sockets = [self.socket(kinds[i % len(kinds)]) for i in range(self.plan.sockets)]
            streams = [self.stream() for _ in range(self.plan.streams)]
            creators = [self.creator() for _ in range(self.plan.creators)]
            tasks = [asyncio.create_task(c) for c in [*sockets, *streams, *creators]]
            ready.set()
            await asyncio.gather(*tasks)
        finally:
            await self.http.aclose()
        return self.counts


@dataclass(frozen=True)
class Outcome:
    counts: dict[str, int]  # what it did and was told, by kind
    cpu: float  # CPU seconds the abuser itself spent


def idle_priority() -> None:
    """An attacker spends its own machine's CPU, not the server's: here it shares the
    server's cores, so it runs under the idle scheduling class and gets only the cycles
    the product leaves idle, never one the product wants. Niceness alone is not that: at
    nice 19 it still took a share of a busy core (tests/README.md, "Load against limits")."""
    os.nice(19)
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def main(plan: Plan, ready: MpEvent, stop: MpEvent, results: Queue[Outcome]) -> None:
    # What it sends still reaches the product as fast as the product reads it.
    idle_priority()
    counts = asyncio.run(Abuser(plan, stop).run(ready))
    results.put(Outcome(dict(counts), time.process_time()))


def spin(seconds: float, ready: MpEvent, stop: MpEvent, results: Queue[Outcome]) -> None:
    """The control for the abuser's own CPU: a process as busy as the abuser's (one core,
    at the same priority) that sends nothing. Even at idle priority a busy core slows the
    product's turns beside it (waking a process takes it from the spinner, caches are
    shared), and a remote attacker would not cost the product that."""
    idle_priority()
    deadline = time.monotonic() + seconds
    ready.set()
    while not stop.is_set() and time.monotonic() < deadline:
        for _ in range(1000):
            pass
    results.put(Outcome({}, time.process_time()))


@contextlib.contextmanager
def in_process(
    target: Callable[[Any, MpEvent, MpEvent, Queue[Outcome]], None], arg: Any, seconds: float
) -> Iterator[Callable[[], Outcome]]:
    """`target(arg, ready, stop, results)` running in its own process, once it has said it
    is ready; the yielded function stops it and returns its outcome. It stops by itself
    after `seconds`."""
    context = mp.get_context("spawn")
    ready, stop = context.Event(), context.Event()
    results: Queue[Outcome] = context.Queue()
    process = context.Process(target=target, args=(arg, ready, stop, results), daemon=True)
    process.start()
    try:
        wait_until(lambda: ready.is_set() or not process.is_alive(), 30, target.__name__)
        if not ready.is_set():
            raise RuntimeError(f"{target.__name__} failed to start (exit code {process.exitcode})")

        def finish() -> Outcome:
            stop.set()
            outcome: Outcome = results.get(timeout=seconds + 30)
            process.join(timeout=10)
            return outcome

        yield finish
    finally:
        stop.set()
        process.join(timeout=10)
        if process.is_alive():
            process.kill()
            process.join()


def abusing(plan: Plan) -> contextlib.AbstractContextManager[Callable[[], Outcome]]:
    """The abuser running in its own process, started once it floods."""
    return in_process(main, plan, plan.seconds)


def spinning(seconds: float) -> contextlib.AbstractContextManager[Callable[[], Outcome]]:
    """The abuser's control (`spin`) running in its own process."""
    return in_process(spin, seconds, seconds)
