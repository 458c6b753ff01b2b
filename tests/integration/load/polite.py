"""Polite clients: people chatting through nginx, each from its own loopback address, one
message at a time with a pause between turns, recording each turn's time to first token
(the request sent to its first `delta`) and anything that was not a plain answer.

Half of them use SSE (`POST .../messages`), half a WebSocket, as the UI and API clients do.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException
from websockets.typing import Subprotocol

# A short question: the fake model echoes it in a few tokens.
QUESTION = "how are you today"
TIMEOUT = httpx.Timeout(10.0, connect=3.0)


@dataclass(frozen=True)
class Plan:
    url: str  # nginx, http://127.0.0.1:port
    turns: int  # per client
    pause: float  # between a client's turns: a person reading the answer and typing


@dataclass
class Record:
    """What one client saw: each turn's time to first token, and every problem, named."""

    ttft: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class Polite:
    def __init__(self, plan: Plan, address: str, record: Record) -> None:
        self.plan, self.address, self.record = plan, address, record
        transport = httpx.AsyncHTTPTransport(local_address=address, retries=0)
        self.http = httpx.AsyncClient(base_url=plan.url, transport=transport, timeout=TIMEOUT)
        self.session_id = ""
        self.token = ""

    async def run(self, websocket: bool, offset: float) -> None:
        # People do not all press enter at the same instant: each client starts a fraction
        # of a pause after the previous one (pacing).
        await asyncio.sleep(offset)
        try:
            r = await self.http.post("/api/sessions", json={})
            if r.status_code != 201:
                self.record.problems.append(f"POST /api/sessions {r.status_code}: {r.text}")
                return
            self.session_id, self.token = r.json()["session_id"], r.json()["token"]
            if websocket:
                await self.over_websocket()
            else:
                await self.over_sse()
        finally:
            await self.http.aclose()

    async def over_sse(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        path = f"/api/sessions/{self.session_id}/messages"
        for turn in range(self.plan.turns):
            if turn:
                await asyncio.sleep(self.plan.pause)  # the person's pace, not a wait
            sent = time.perf_counter()
            first: float | None = None
            ended: tuple[str, Any] = ("", None)
            try:
                async with self.http.stream(
                    "POST", path, json={"content": QUESTION}, headers=headers
                ) as r:
                    if r.status_code != 200:
                        body = (await r.aread()).decode(errors="replace")
                        self.record.problems.append(f"SSE turn {turn}: {r.status_code} {body}")
                        continue
                    event = ""
                    async for line in r.aiter_lines():
                        if line.startswith("event: "):
                            event = line.removeprefix("event: ")
                        elif line.startswith("data: ") and event == "delta" and first is None:
                            first = time.perf_counter()
                        elif line.startswith("data: ") and event in ("done", "error"):
                            ended = (event, orjson.loads(line.removeprefix("data: ")))
            except httpx.HTTPError as exc:
                self.record.problems.append(f"SSE turn {turn}: {type(exc).__name__} {exc}")
                continue
            self.turn_ended(turn, sent, first, ended)

    async def over_websocket(self) -> None:
        host = self.plan.url.removeprefix("http://")
        try:
            async with connect(
                f"ws://{host}/api/sessions/{self.session_id}/ws",
                subprotocols=[Subprotocol("bearer"), Subprotocol(self.token)],
                local_addr=(self.address, 0),
                compression=None,
                open_timeout=TIMEOUT.connect,
            ) as ws:
                for turn in range(self.plan.turns):
                    if turn:
                        await asyncio.sleep(self.plan.pause)  # the person's pace
                    await self.ws_turn(ws, turn)
        except (WebSocketException, OSError, TimeoutError) as exc:
            self.record.problems.append(f"WebSocket: {type(exc).__name__} {exc}")

    async def ws_turn(self, ws: ClientConnection, turn: int) -> None:
        sent = time.perf_counter()
        await ws.send(orjson.dumps({"type": "message", "content": QUESTION}).decode())
        first: float | None = None
        async with asyncio.timeout(TIMEOUT.read):
            while True:
                frame = orjson.loads(await ws.recv())
                if frame["event"] == "delta" and first is None:
                    first = time.perf_counter()
                elif frame["event"] in ("done", "error"):
                    break
        self.turn_ended(turn, sent, first, (frame["event"], frame["data"]))

    def turn_ended(
        self, turn: int, sent: float, first: float | None, ended: tuple[str, Any]
    ) -> None:
        event, data = ended
        if first is None or event != "done" or data.get("status") != "complete":
            self.record.problems.append(f"turn {turn}: first delta at {first}, ended {ended}")
            return
        self.record.ttft.append(first - sent)


async def chat(plan: Plan, addresses: list[str]) -> list[Record]:
    """Every client at once, each from its address; half over SSE, half over a WebSocket."""
    records = [Record() for _ in addresses]
    clients = [Polite(plan, a, r) for a, r in zip(addresses, records, strict=True)]
    step = plan.pause / len(clients)
    await asyncio.gather(*(c.run(bool(i % 2), i * step) for i, c in enumerate(clients)))
    return records
