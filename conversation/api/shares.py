"""Share links: the owner creates, lists and revokes them; anyone with the id reads the
snapshot (no credentials, no cookie set) or copies it into their own chats."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from pydantic import BaseModel, Field
from starlette.requests import HTTPConnection

from conversation.api.clients import LimitsDep, client_of
from conversation.auth import browser_id, new_browser_id, set_browser_cookie
from conversation.deps import SameOrigin, SessionDep, SettingsDep, StoreDep
from conversation.models import Request as Body
from conversation.models import SessionCreated, StoredMessage
from conversation.shares import SharedChat, ShareLink, Shares, TooManyShares
from conversation.store import digest

router = APIRouter(tags=["share links"])

GONE = "This shared chat does not exist: the link is wrong, was revoked, or has expired."


async def get_shares(conn: HTTPConnection) -> Shares:
    return cast(Shares, conn.app.state.shares)


SharesDep = Annotated[Shares, Depends(get_shares)]


class CreateShare(Body):
    expires_in: int | None = Field(
        default=None, ge=1, description="Seconds the link lives (default: SHARE_MAX_TTL)"
    )


class ShareList(BaseModel):
    shares: list[ShareLink]


def share_gone() -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, GONE)


@router.post("/api/sessions/{session_id}/shares", status_code=status.HTTP_201_CREATED)
async def create_share(
    session: SessionDep, shares: SharesDep, settings: SettingsDep, body: CreateShare | None = None
) -> ShareLink:
    expires_in = body.expires_in if body else None
    if expires_in is not None and expires_in > settings.share_max_ttl:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            [
                {
                    "loc": ["body", "expires_in"],
                    "msg": f"at most {settings.share_max_ttl} seconds",
                    "type": "less_than_equal",
                }
            ],
        )
    try:
        created = await shares.create(session, expires_in)
    except TooManyShares:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"This chat already has {settings.max_shares_per_session} share links, the most it "
            "may have: revoke one first.",
        ) from None
    if created is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Session not found.")
    return created


@router.get("/api/sessions/{session_id}/shares")
async def list_shares(session: SessionDep, shares: SharesDep) -> ShareList:
    return ShareList(shares=await shares.list(session.session_id))


@router.delete(
    "/api/sessions/{session_id}/shares/{share_id}", status_code=status.HTTP_204_NO_CONTENT
)
async def revoke_share(session: SessionDep, share_id: str, shares: SharesDep) -> Response:
    if not await shares.revoke(session.session_id, share_id):
        raise share_gone()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/api/shares/{share_id}")
async def read_share(share_id: str, shares: SharesDep, response: Response) -> SharedChat:
    """No credentials needed, none read, no cookie set: the link is the permission."""
    shared = await shares.read(share_id)
    if shared is None:
        raise share_gone()
    # A revoked link must stop working at once, not live on in a cache.
    response.headers["Cache-Control"] = "no-store"
    return shared


@router.post(
    "/api/shares/{share_id}/continue",
    status_code=status.HTTP_201_CREATED,
    dependencies=[SameOrigin],
)
async def continue_share(
    share_id: str,
    request: Request,
    response: Response,
    shares: SharesDep,
    store: StoreDep,
    settings: SettingsDep,
    limits: LimitsDep,
) -> SessionCreated:
    """A new chat of the caller's own (its browser's, as `POST /api/sessions` makes) holding
    the snapshot's messages, to go on with."""
    shared = await shares.read(share_id)
    if shared is None:
        raise share_gone()
    browser = browser_id(request, settings) or new_browser_id()
    set_browser_cookie(response, browser, settings)
    await limits.count_session(client_of(request))
    meta, token = await store.create_session(shared.name, "", digest(browser))
    copies = [StoredMessage.model_validate(m.model_dump()) for m in shared.messages]
    await store.append_messages(meta.session_id, copies)
    return SessionCreated(
        session_id=meta.session_id,
        token=token,
        name=meta.name,
        created_at=meta.created_at,
        expires_at=store.expires_at(),
    )
