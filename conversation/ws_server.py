"""conversation's WebSocket server: `uvicorn --ws conversation.ws_server:WebSocketProtocol`.

uvicorn's websockets-sansio protocol, lighter per open socket (bench scenario 4: ~10 KiB of
the ~75 KiB conversation held per WebSocket stream at 1,000 streams):
- it keeps the upgrade request and its 101 response for the socket's whole life (websockets'
  parser keeps the request too), though nothing reads them once the handshake is done:
  every header in websockets' structures, ~5 KiB behind nginx. Their headers are dropped
  once the socket is accepted; the ASGI scope keeps its own copy, which is what the app reads;
- its receive queue (an asyncio.Queue: three deques, ~2.3 KiB) and its writable flag (an
  asyncio.Event: one deque, ~0.8 KiB) are replaced by list-based equivalents of the few
  methods it calls;
- a message frame longer than WS_MAX_FRAME_BYTES (a little over the longest message a user
  may send) is refused from its header, before its payload is read: close 1009, "message too
  big" (uvicorn's own cap, --ws-max-size, is 16 MiB).
Everything else, framing, pings, close handshake and flow control, is uvicorn's own.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from uvicorn._types import ASGIReceiveEvent, ASGISendEvent
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from conversation.config import Settings
from conversation.slim_queues import Flag, SlimQueue


@cache
def max_frame_bytes() -> int:
    """From the environment, as the app reads its settings (the protocol is made before)."""
    return Settings().ws_max_frame_bytes


class WebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = SlimQueue[ASGIReceiveEvent]()  # type: ignore[assignment]
        writable = Flag()
        writable.set()  # as uvicorn starts it
        self.writable = writable  # type: ignore[assignment]
        self.conn.max_message_size = max_frame_bytes()

    async def send(self, message: ASGISendEvent) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            # Read only until the handshake completes (accept, reject, a denial response).
            self.request.headers.clear()
            self.response.headers.clear()
