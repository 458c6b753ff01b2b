"""The original tutorials' interfaces, on top of the same sessions.

Their clients keep working unchanged: `/token` + `/refresh_token` + `WS /chat` (a token
names a session), `/api/chat` (a word-per-event stream) and `/chat/` (plain JSON turns).
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Request, WebSocket, WebSocketDisconnect, status
from pydantic import BaseModel, ConfigDict

from common.event_stream import EventStreamResponse
from common.protocol import ChatMessage
from conversation.api.clients import LimitsDep, client_of
from conversation.api.ws import FrameGate
from conversation.assistant_client import AssistantCallError
from conversation.auth import bearer_token, claim_of
from conversation.deps import (
    AssistantDep,
    SameOrigin,
    SettingsDep,
    StoreDep,
    TurnsDep,
    check_length,
)
from conversation.errors import ConversationError
from conversation.events import Event
from conversation.limits import Admission, Client, estimate_tokens
from conversation.models import AnyText
from conversation.store import Claim, SessionMeta, Store
from conversation.turns import Turns, final_event, overloaded

router = APIRouter(tags=["tutorials"], dependencies=[SameOrigin])

INVALID_NAME = {"loc": "name", "msg": "Enter a valid name"}
SESSION_GONE = "Session expired or does not exist"
WORD = re.compile(r"\S+")


class TokenOut(BaseModel):
    name: str
    token: str


class TutorialMessage(BaseModel):
    id: str
    msg: str
    timestamp: datetime
    role: str


class ChatHistory(BaseModel):
    token: str
    name: str
    messages: list[TutorialMessage]
    session_start: datetime


class ApiChatIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_message: AnyText


class ChatIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    session_id: AnyText | None = None
    message: AnyText


class ChatOut(BaseModel):
    response: str
    session_id: str
    token: str | None = None


@router.get("/test")
async def test() -> dict[str, str]:
    return {"msg": "API is Online"}


@router.post("/token")
async def create_token(
    request: Request, store: StoreDep, settings: SettingsDep, limits: LimitsDep, name: str = ""
) -> TokenOut:
    name = name.strip()
    if not name or len(name) > settings.max_name_chars:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, INVALID_NAME)
    await limits.count_session(client_of(request))
    # The tutorials' name is the person's own, not a chat's title to replace.
    _, token = await store.create_session(name, "", "", named_by_user=True)
    return TokenOut(name=name, token=token)


async def _session_for(store: Store, token: str | None) -> SessionMeta | None:
    return await store.session_for_token(token) if token else None


@router.get("/refresh_token", operation_id="refresh_token_get")
@router.post("/refresh_token", operation_id="refresh_token_post")
async def refresh_token(
    store: StoreDep, settings: SettingsDep, token: str | None = None
) -> ChatHistory:
    """The session's newest HISTORY_PAGE_SIZE messages."""
    meta = await _session_for(store, token)
    page = await store.history(meta.session_id, settings.history_page_size) if meta else None
    if meta is None or page is None or token is None:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, SESSION_GONE)
    return ChatHistory(
        token=token,
        name=meta.name,
        session_start=meta.created_at,
        messages=[
            TutorialMessage(id=m.id, msg=m.content, timestamp=m.created_at, role=m.role)
            for m in page.messages
        ],
    )


async def _reply(
    turns: Turns, claim: Claim, text: str, client: Client | Admission
) -> tuple[bool, str]:
    """Run a turn to its end: (succeeded, reply text or the reason it failed)."""
    event = await final_event(await turns.send(claim, text, None, client))
    data: dict[str, Any] = orjson.loads(event.data) if event is not None else {}
    if event is not None and event.name == "done":
        return True, str(data["content"])
    return False, str(data.get("message", "The reply could not be written."))


@router.websocket("/chat")
async def chat_socket(
    ws: WebSocket, store: StoreDep, turns: TurnsDep, settings: SettingsDep
) -> None:
    await ws.accept()
    token = ws.query_params.get("token")
    meta = await _session_for(store, token)
    if meta is None or token is None:
        await ws.close(status.WS_1008_POLICY_VIOLATION, reason=SESSION_GONE)
        return
    claim = Claim.for_token(meta.session_id, token)
    client = client_of(ws, meta.session_id)
    gate = FrameGate(ws, settings)
    try:
        while True:
            text = await ws.receive_text()
            admitted = await gate.admit()
            if admitted is None:
                return
            if not admitted:
                continue
            try:
                check_length(text, settings.max_message_chars, "The message")
                _, reply = await _reply(turns, claim, text, client)
            except ConversationError as exc:
                reply = exc.message
            await ws.send_text(reply)
    except WebSocketDisconnect:
        return


@router.post("/chat/", response_model_exclude_none=True)
async def chat_turn(
    body: ChatIn, request: Request, store: StoreDep, turns: TurnsDep, settings: SettingsDep
) -> ChatOut:
    """One JSON turn; without `session_id` a new session starts and its token is returned."""
    check_length(body.message, settings.max_message_chars, "The message")
    token: str | None = None
    client: Client | Admission
    if body.session_id:
        bearer = bearer_token(request)
        claim = claim_of(request, body.session_id, settings, bearer)
        client = client_of(request, body.session_id if bearer else None)
    elif turns.hub.full:
        # Checked before creating the session the turn would have gone into (the turn
        # itself re-checks): a refused turn leaves nothing behind.
        raise overloaded()
    else:
        # So are the client's limits: the turn is counted first, the session made after.
        asking = client_of(request)
        client = await turns.limits.admit(asking)
        try:
            await turns.limits.count_session(asking)
            # No list shows it: a title would only spend the model.
            meta, token = await store.create_session("Chat", "", "", named_by_user=True)
        except BaseException:
            await client.release(started=False)
            raise
        claim = Claim.for_token(meta.session_id, token)
    ok, reply = await _reply(turns, claim, body.message, client)
    if not ok:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, reply)
    return ChatOut(response=reply, session_id=claim.session_id, token=token)


def split_words(text: str) -> tuple[list[str], str]:
    """The complete words of `text`, and its last word if it may continue in the next delta."""
    words = WORD.findall(text)
    if words and not text[-1].isspace():
        return words[:-1], words[-1]
    return words, ""


async def _words(
    assistant: AssistantDep, text: str, admission: Admission
) -> AsyncGenerator[bytes, None]:
    pending, sent = "", 0  # bytes of reply, for its tokens
    try:
        async with admission.renewing():
            async for item in assistant.stream([ChatMessage(role="user", content=text)]):
                if not isinstance(item, list):
                    continue
                sent += sum(len(t.encode()) for t in item)
                words, pending = split_words(pending + "".join(item))
                for word in words:
                    yield b"data: " + word.encode() + b"\n\n"
        for word in WORD.findall(pending):
            yield b"data: " + word.encode() + b"\n\n"
    except AssistantCallError as exc:
        yield b"event: error\ndata: " + exc.message.encode() + b"\n\n"
    finally:
        # However it ends (the client may have gone): free the slot, count what was written.
        await admission.release(estimate_tokens(sent))


@router.post("/api/chat")
async def api_chat(
    body: ApiChatIn,
    request: Request,
    assistant: AssistantDep,
    settings: SettingsDep,
    limits: LimitsDep,
) -> EventStreamResponse:
    """A one-off question: the reply as `data: <word>` events, one per word. It stores
    nothing, but spends the model: counted against the client's limits like a turn."""
    text = check_length(body.user_message, settings.max_message_chars, "The message")
    admission = await limits.admit(client_of(request))
    return EventStreamResponse(_words(assistant, text, admission))


__all__ = ["Event", "router"]
