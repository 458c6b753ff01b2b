"""Usage: the tokens the caller's replies spent, per day and model (conversation.usage).

The caller is its Bearer token's chat, else its browser (cookie): each reads only its own.
A chat's own usage, whoever asked for its replies, is under the chat's path.
"""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import APIRouter, HTTPException, Query, Request, status
from starlette.requests import HTTPConnection

from conversation.auth import MISSING_CREDENTIALS, bearer_token, browser_id, check_same_origin
from conversation.deps import SessionDep, SettingsDep, StoreDep
from conversation.limits import Identity
from conversation.models import UsageReport
from conversation.usage import UsageBook, chat_identity

router = APIRouter(tags=["usage"])

Days = Annotated[
    int | None,
    Query(
        ge=1, description="How many days, today included (default and most: USAGE_RETENTION_DAYS)"
    ),
]


def usage_book(conn: HTTPConnection) -> UsageBook:
    return cast(UsageBook, conn.app.state.usage)


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"}
    )


async def report(
    conn: HTTPConnection, scope: str, identity: Identity, days: int | None
) -> UsageReport:
    book = usage_book(conn)
    span = min(days or book.retention_days, book.retention_days)
    return UsageReport(client=scope, days=await book.report(identity, span))


@router.get("/api/usage")
async def my_usage(
    request: Request, store: StoreDep, settings: SettingsDep, days: Days = None
) -> UsageReport:
    """The caller's own usage, today first: a Bearer token's is its chat's, a browser's
    covers every chat it wrote in (deleted ones too)."""
    token = bearer_token(request)
    if token is not None:
        meta = await store.session_for_token(token)
        if meta is None:
            raise unauthorized(
                "This token is not valid: its chat may have expired or been deleted."
            )
        return await report(request, "session", chat_identity(meta.session_id), days)
    browser = browser_id(request, settings)
    if browser is None:
        raise unauthorized(MISSING_CREDENTIALS)
    check_same_origin(request)
    return await report(request, "browser", Identity.of("browser", browser), days)


@router.get("/api/sessions/{session_id}/usage")
async def chat_usage(request: Request, session: SessionDep, days: Days = None) -> UsageReport:
    """What this chat's replies spent, today first."""
    return await report(request, "chat", chat_identity(session.session_id), days)
