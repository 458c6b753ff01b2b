"""SlimQueue and Flag: the asyncio.Queue and asyncio.Event behaviour that uvicorn (conversation's
WebSocket protocol) and reply generation rely on. (The protocol itself runs under every
WebSocket integration test: the launchers start conversation with it.)"""

from __future__ import annotations

import asyncio

from uvicorn._types import ASGIReceiveEvent

from conversation.slim_queues import Flag, SlimQueue

CONNECT: ASGIReceiveEvent = {"type": "websocket.connect"}
DISCONNECT: ASGIReceiveEvent = {"type": "websocket.disconnect", "code": 1000}


async def test_inbox_gives_items_in_order_and_tells_when_empty() -> None:
    inbox = SlimQueue[ASGIReceiveEvent]()
    assert inbox.empty()
    inbox.put_nowait(CONNECT)
    inbox.put_nowait(DISCONNECT)
    assert not inbox.empty()
    assert await inbox.get() is CONNECT
    assert await inbox.get() is DISCONNECT
    assert inbox.empty()


async def test_inbox_wakes_a_waiting_reader() -> None:
    inbox = SlimQueue[ASGIReceiveEvent]()
    reader = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)  # let the reader park: a yield to the loop, not a timed wait
    assert not reader.done()
    inbox.put_nowait(CONNECT)
    assert await reader is CONNECT


async def test_inbox_loses_no_item_when_a_woken_reader_is_cancelled() -> None:
    inbox = SlimQueue[ASGIReceiveEvent]()
    first = asyncio.create_task(inbox.get())
    second = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait(CONNECT)
    first.cancel()  # woken, then cancelled before it took the item
    assert await second is CONNECT
    assert first.cancelled()
    assert inbox.empty()


async def test_flag_wait_returns_at_once_when_set_and_waits_when_clear() -> None:
    flag = Flag()
    assert not flag.is_set()
    flag.set()
    assert await flag.wait() is True
    flag.clear()
    waiter = asyncio.create_task(flag.wait())
    await asyncio.sleep(0)
    assert not waiter.done()
    flag.set()
    assert await waiter is True


async def test_a_cancelled_flag_waiter_leaves_nothing_behind() -> None:
    flag = Flag()
    waiter = asyncio.create_task(flag.wait())
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    flag.set()
    assert flag.is_set()
    assert await flag.wait() is True


def test_inbox_drain_takes_everything_waiting_in_order() -> None:
    inbox = SlimQueue[ASGIReceiveEvent]()
    assert inbox.drain() == []
    inbox.put_nowait(CONNECT)
    inbox.put_nowait(DISCONNECT)
    assert inbox.drain() == [CONNECT, DISCONNECT]
    assert inbox.empty()
