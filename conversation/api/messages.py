"""Messages: send (answered as an SSE stream), resume, cancel, regenerate, edit."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, status

from common.event_stream import EventStreamResponse
from conversation.api.catalogue import CatalogueDep, checked_model
from conversation.api.clients import ClientDep
from conversation.deps import ClaimDep, SessionDep, SettingsDep, TurnsDep, check_length
from conversation.models import EditMessage, Message, Regenerate, SendMessage
from conversation.streams import sse_body
from conversation.turns import Turn

router = APIRouter(prefix="/api/sessions/{session_id}", tags=["messages"])

SSE_DOC: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "user/start/delta/done/error"}
}


def stream(turn: Turn) -> EventStreamResponse:
    return EventStreamResponse(sse_body(turn.first, turn.events))


@router.post("/messages", responses=SSE_DOC)
async def send_message(
    body: SendMessage, claim: ClaimDep, client: ClientDep, turns: TurnsDep, settings: SettingsDep
) -> EventStreamResponse:
    content = check_length(body.content, settings.max_message_chars, "The message")
    return stream(await turns.send(claim, content, body.client_message_id, client))


# An event id is a count of characters: far below 10^15 for any reply that fits in Redis.
EVENT_ID = re.compile(r"[0-9]{1,15}")


def parse_offset(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    if not EVENT_ID.fullmatch(value):
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            "Last-Event-ID must be the id of an event received from this reply (a number).",
        )
    return int(value)


@router.get("/messages/{message_id}/stream", responses=SSE_DOC)
async def resume_stream(
    message_id: str,
    session: SessionDep,
    turns: TurnsDep,
    last_event_id: Annotated[str | None, Header()] = None,
    from_id: Annotated[str | None, Query(alias="last_event_id")] = None,
) -> EventStreamResponse:
    """Continue a reply after the client's last event (`Last-Event-ID` header or query);
    without one, replay it from `start`."""
    offset = parse_offset(last_event_id if last_event_id is not None else from_id)
    return stream(await turns.resume(session.session_id, message_id, offset))


@router.post("/messages/{message_id}/cancel")
async def cancel_reply(message_id: str, session: SessionDep, turns: TurnsDep) -> Message:
    """Stop the reply wherever it is being written; the partial reply is kept."""
    return (await turns.cancel(session.session_id, message_id)).public()


@router.post("/messages/{message_id}/continue", responses=SSE_DOC)
async def continue_reply(
    message_id: str, claim: ClaimDep, client: ClientDep, turns: TurnsDep
) -> EventStreamResponse:
    """Write on after the last reply's text when it stopped early (status `length`,
    `cancelled` or `interrupted`). Events: `start` (its id: the length the reply had), then
    `delta`s to append, then `done` with the whole reply."""
    return stream(await turns.extend(claim, message_id, client))


@router.post("/regenerate", responses=SSE_DOC)
async def regenerate(
    claim: ClaimDep,
    client: ClientDep,
    turns: TurnsDep,
    catalogue: CatalogueDep,
    body: Regenerate | None = None,
) -> EventStreamResponse:
    """A new version of a reply on the active path (`message_id`; none: the last), the old
    one kept as its sibling (events: start, delta..., done), written by `model` if given
    (this reply only; the chat keeps its model)."""
    target = body.message_id if body is not None and body.message_id else ""
    model = body.model if body is not None else None
    if model is not None:
        model = await checked_model(catalogue, model)
    return stream(await turns.regenerate(claim, client, target, model))


@router.patch("/messages/{message_id}", responses=SSE_DOC)
async def edit_message(
    message_id: str,
    body: EditMessage,
    claim: ClaimDep,
    client: ClientDep,
    turns: TurnsDep,
    settings: SettingsDep,
) -> EventStreamResponse:
    """A new version of a user message on the active path, and a reply to it; the old
    version is kept as its sibling (events: user, start, ...)."""
    content = check_length(body.content, settings.max_message_chars, "The message")
    return stream(await turns.edit(claim, message_id, content, client))
