"""Branches: which version of a message the chat shows (editing and regenerating add them)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from conversation.api.sessions import detail
from conversation.auth import not_found
from conversation.deps import SessionDep, SettingsDep, StoreDep
from conversation.models import SessionDetail, SwitchBranch

router = APIRouter(prefix="/api/sessions/{session_id}", tags=["messages"])


@router.patch("/messages/{message_id}/active")
async def switch_branch(
    message_id: str,
    session: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
    body: SwitchBranch | None = None,
) -> SessionDetail:
    """Show another version of a message: its sibling at `sibling_index` (none: the message
    itself). The active path then runs through it and, below it, through the versions last
    shown there. Answers with the new active path's first page, as `GET` does. 409 while a
    reply is being written."""
    sid = session.session_id
    refused = await store.switch(sid, message_id, (body or SwitchBranch()).sibling_index)
    if refused is not None and refused.reason == "busy":
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"A reply is being written in this chat (message {refused.holder}): switch "
            "versions when it has finished, or stop it with "
            f"POST /api/sessions/{sid}/messages/{refused.holder}/cancel.",
        )
    if refused is not None and refused.reason == "sibling_index":
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"sibling_index: this message has {refused.sibling_count} version(s); "
            f"give a number from 1 to {refused.sibling_count}.",
        )
    if refused is not None:
        raise not_found("Message")
    page = await store.history(sid, settings.history_page_size)
    if page is None:
        raise not_found()
    return detail(session, store, page)
