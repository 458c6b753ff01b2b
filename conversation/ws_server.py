"""conversation's WebSocket server: `uvicorn --ws conversation.ws_server:WebSocketProtocol`.

uvicorn's websockets-sansio protocol, lighter per open socket (bench scenario 4: ~10 KiB of
the ~75 KiB conversation held per WebSocket stream at 1,000 streams):
- it keeps the upgrade request and its 101 response for the socket's whole life (websockets'
  parser keeps the request too), though nothing reads them once the handshake is done:
  every header in websockets' structures, ~5 KiB behind nginx. Their headers are dropped
  once the socket is accepted; the ASGI scope keeps its own copy, which is what the app reads;
- its receive queue (an asyncio.Queue: three deques, ~2.3 KiB) and its writable flag (an
  asyncio.Event: one deque, ~0.8 KiB) are replaced by list-based equivalents of the few
  methods it calls.
Everything else, framing, pings, close handshake and flow control, is uvicorn's own.
"""

from __future__ import annotations

import asyncio
from typing import Any, Generic, TypeVar

from uvicorn._types import ASGIReceiveEvent, ASGISendEvent
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

T = TypeVar("T")


def _wake(waiters: list[asyncio.Future[None]]) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(None)


async def _park(waiters: list[asyncio.Future[None]]) -> None:
    """Wait until `_wake(waiters)`; a waiter that is cancelled leaves the list too."""
    waiter = asyncio.get_running_loop().create_future()
    waiters.append(waiter)
    try:
        await waiter
    finally:
        waiters.remove(waiter)


class Inbox(Generic[T]):
    """asyncio.Queue's put_nowait, get, get_nowait and empty, unbounded: ~0.2 KiB where an
    asyncio.Queue takes ~2.4 KiB (three deques). For any one-reader queue held per open
    stream."""

    __slots__ = ("_items", "_waiters")

    def __init__(self) -> None:
        self._items: list[T] = []
        self._waiters: list[asyncio.Future[None]] = []

    def empty(self) -> bool:
        return not self._items

    def put_nowait(self, item: T) -> None:
        self._items.append(item)
        # Every waiter wakes and re-checks: one cancelled after its wake-up loses no item.
        _wake(self._waiters)

    async def get(self) -> T:
        while not self._items:
            await _park(self._waiters)
        return self._items.pop(0)

    def get_nowait(self) -> T:
        if not self._items:
            raise asyncio.QueueEmpty
        return self._items.pop(0)


class Flag:
    """asyncio.Event's set, clear, is_set and wait."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[None]] = []

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        _wake(self._waiters)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        while not self._set:
            await _park(self._waiters)
        return True


class WebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = Inbox[ASGIReceiveEvent]()  # type: ignore[assignment]
        writable = Flag()
        writable.set()  # as uvicorn starts it
        self.writable = writable  # type: ignore[assignment]

    async def send(self, message: ASGISendEvent) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            # Read only until the handshake completes (accept, reject, a denial response).
            self.request.headers.clear()
            self.response.headers.clear()
