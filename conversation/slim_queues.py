"""asyncio's Queue and Event, cut to what one open stream uses, at a tenth of the memory.

conversation holds a few of these per open stream (its WebSocket server's receive queue and
writable flag, each reply subscriber's outbox, a reply's flush signals): at 1,000 open
streams, asyncio.Queue's three deques (~2.4 KiB) and asyncio.Event's one (~0.8 KiB) would
be a sizeable part of the memory per stream (bench scenario 4 measures it).
"""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

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


class SlimQueue(Generic[T]):
    """asyncio.Queue's put_nowait, get and empty, unbounded: ~0.2 KiB where an
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

    def drain(self) -> list[T]:
        """Every item waiting, oldest first, at once (none: an empty list)."""
        items, self._items = self._items, []
        return items


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
