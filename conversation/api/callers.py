"""Whose chats a request may read across sessions (export all, search): the browser's, by
its cookie, and the Bearer token's session."""

from __future__ import annotations

from fastapi import HTTPException, status
from starlette.requests import HTTPConnection

from conversation.auth import MISSING_CREDENTIALS, bearer_token, browser_id, not_found, same_origin
from conversation.config import Settings
from conversation.store import SessionMeta, Store


def credentials(conn: HTTPConnection, settings: Settings) -> tuple[str | None, str | None]:
    """The Bearer token and the browser id; 401 without either. The cookie counts from our
    own pages only: another site's page cannot read the answer, and need not cost the work."""
    token = bearer_token(conn)
    browser = browser_id(conn, settings) if same_origin(conn) else None
    if token is None and browser is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            MISSING_CREDENTIALS,
            headers={"WWW-Authenticate": "Bearer"},
        )
    return token, browser


async def token_session(store: Store, token: str) -> SessionMeta:
    """The token's session; the usual 404 for a wrong token."""
    meta = await store.session_for_token(token)
    if meta is None:
        raise not_found()
    return meta
