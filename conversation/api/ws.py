"""WebSocket chat: the same events as the SSE stream, as JSON text frames.

Client frames: {"type": "message", "content", "client_message_id"?} and {"type": "cancel"}.
Server frames: {"event": "user"|"start"|"queued"|"delta"|"done"|"error", "id": "<n>",
"data": {...}}.
"""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, WebSocket, WebSocketDisconnect, status
from pydantic import TypeAdapter, ValidationError
from redis.exceptions import RedisError

from conversation.api.clients import session_client
from conversation.api.errors import code_for, error_frame, redis_failure, refused_socket
from conversation.auth import authorize, claim_of, websocket_token
from conversation.config import Settings
from conversation.deps import check_length, get_settings, get_store, get_turns
from conversation.errors import ConversationError
from conversation.events import Event, error_event
from conversation.limits import Client, FrameBucket, frames_too_fast
from conversation.models import WsFrame, WsMessage
from conversation.store import Claim
from conversation.turns import Turn, Turns, busy

router = APIRouter(tags=["websocket"])

FRAME = TypeAdapter[WsFrame](WsFrame)


async def send_error(ws: WebSocket, code: str, message: str) -> None:
    ws.app.state.metrics.count_error(code)
    await ws.send_text(error_event(code, message, 0).ws())


async def send_refusal(ws: WebSocket, exc: ConversationError) -> None:
    ws.app.state.metrics.count_error(exc.code)
    await ws.send_text(error_frame(exc))


class Chat:
    """One socket's turns: at most one pump at a time, cancel stops the current reply.

    While the socket's own reply is still being written, another message on it is refused
    here, with the refusal the turn's start would give, without a round trip to Redis: a
    client flooding its socket with messages costs the others nothing but the frames."""

    def __init__(
        self, ws: WebSocket, claim: Claim, client: Client, turns: Turns, limit: int
    ) -> None:
        # The credentials the socket opened with: each turn's start checks them again.
        self.ws, self.claim, self.turns, self.limit = ws, claim, turns, limit
        self.client = client
        self.reply_id = ""
        # The message that started the reply still being written ("" when none is): sent
        # again with its client_message_id, it is a retry, answered by the turn's start.
        self.writing = ""
        self.client_message_id: str | None = None
        self.pump: asyncio.Task[None] | None = None

    async def handle(self, raw: str) -> None:
        try:
            frame = FRAME.validate_json(raw)
        except ValidationError as exc:
            await send_error(self.ws, "invalid", f"Unreadable frame: {exc.errors()[0]['msg']}.")
            return
        try:
            if isinstance(frame, WsMessage):
                await self.send(frame)
            elif self.reply_id:
                await self.turns.cancel(self.claim.session_id, self.reply_id)
        except ConversationError as exc:
            await send_refusal(self.ws, exc)
        except RedisError as exc:
            status_code, message = redis_failure(exc)
            await send_error(self.ws, code_for(status_code), message)

    async def send(self, frame: WsMessage) -> None:
        check_length(frame.content, self.limit, "The message")
        retry = frame.client_message_id is not None and (
            frame.client_message_id == self.client_message_id
        )
        if self.writing and not retry:
            raise busy(self.claim.session_id, self.writing)
        turn = await self.turns.send(
            self.claim, frame.content, frame.client_message_id, self.client
        )
        if self.pump is not None:
            # begin_turn succeeded, so the previous reply has ended: let its last frames go.
            with contextlib.suppress(Exception):
                await self.pump
        self.reply_id = turn.reply_id
        self.client_message_id = frame.client_message_id
        self.writing = turn.reply_id if turn.events is not None else ""
        self.pump = asyncio.create_task(self.forward(turn))

    async def forward(self, turn: Turn) -> None:
        """The turn's events to the socket, as they come."""
        try:
            for event in turn.first:
                await self.sent(event, turn.reply_id)
            # Sent: not kept for the rest of the reply. The `user` event holds the message
            # twice (its JSON and its frame), up to 2 x 8,000 characters per open socket.
            turn.first.clear()
            if turn.events is not None:
                async for batch in turn.events:
                    # None is a heartbeat: the WebSocket server pings idle sockets itself.
                    for event in batch or ():
                        await self.sent(event, turn.reply_id)
        finally:
            self.end(turn.reply_id)

    async def sent(self, event: Event, reply_id: str) -> None:
        if event.terminal:
            # Before the frame goes: a client may answer `done` with its next message at
            # once, and that message must find the socket free.
            self.end(reply_id)
        await self.ws.send_text(event.ws())

    def end(self, reply_id: str) -> None:
        if self.writing == reply_id:
            self.writing = ""

    async def close(self) -> None:
        if self.pump is not None:
            self.pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.pump


async def next_frame(ws: WebSocket) -> str | bytes | None:
    """The next frame: its text, or bytes for a binary frame; None once the client is gone.
    (A frame longer than WS_MAX_FRAME_BYTES never gets here: ws_server closes with 1009.)"""
    message = await ws.receive()
    if message["type"] == "websocket.disconnect":
        return None
    text: str | None = message.get("text")
    return text if text is not None else message.get("bytes") or b""


class FrameGate:
    """A socket's frame rate: past it a frame is answered with an error frame and ignored;
    one more before the wait is over closes the socket (1008)."""

    __slots__ = ("bucket", "warned", "ws")  # one per open socket

    def __init__(self, ws: WebSocket, settings: Settings) -> None:
        self.ws = ws
        self.bucket = FrameBucket(settings.ws_frame_rate, settings.ws_frame_burst)
        self.warned = False

    async def admit(self) -> bool | None:
        """True: handle the frame; False: ignore it; None: the socket is closed."""
        wait = self.bucket.take(asyncio.get_running_loop().time())
        if not wait:
            self.warned = False
            return True
        if self.warned:
            await self.ws.close(status.WS_1008_POLICY_VIOLATION, reason="too many frames")
            return None
        self.warned = True
        await send_refusal(self.ws, frames_too_fast(self.bucket.rate, wait))
        return False


async def session_socket(ws: WebSocket) -> None:
    session_id: str = ws.path_params["session_id"]
    store, settings, turns = await get_store(ws), await get_settings(ws), await get_turns(ws)
    token, subprotocol = websocket_token(ws)
    await ws.accept(subprotocol=subprotocol)
    try:
        claim = claim_of(ws, session_id, settings, token)
        await authorize(claim, store)
    except ConversationError as exc:
        code, reason = refused_socket(exc)
        await ws.close(code, reason=reason)
        return
    chat = Chat(ws, claim, session_client(ws, session_id, token), turns, settings.max_message_chars)
    gate = FrameGate(ws, settings)
    try:
        while True:
            raw = await next_frame(ws)
            if raw is None:
                break
            admitted = await gate.admit()
            if admitted is None:
                break
            if admitted and isinstance(raw, str):
                await chat.handle(raw)
            elif admitted:
                await send_error(ws, "invalid", "send JSON text frames")
            # Not held while the socket waits for its next frame, often for the whole reply:
            # a message can be 8,000 characters.
            del raw
    except WebSocketDisconnect:
        pass
    finally:
        await chat.close()


# A plain Starlette route, not `@router.websocket`: FastAPI's keeps two AsyncExitStacks and its
# dependency solver's frames for the socket's whole life (~2.4 KiB per open socket, bench
# scenario 4), here for three look-ups in app.state.
router.add_websocket_route("/api/sessions/{session_id}/ws", session_socket)
