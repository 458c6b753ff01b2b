"""Who is asking, for the per-client limits: the address nginx names (when the peer is a
trusted proxy), the browser cookie, the session of a Bearer token."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from conversation.auth import bearer_token, browser_id
from conversation.config import Settings
from conversation.limits import Client, Limits, client_address


def client_of(conn: HTTPConnection, session_id: str | None = None) -> Client:
    """`session_id`: the session a Bearer token presented names (a token client has no
    cookie; its session is what identifies it besides its address)."""
    limits: Limits = conn.app.state.limits
    settings = cast(Settings, conn.app.state.settings)
    address = client_address(
        conn.client.host if conn.client else None,
        conn.headers.get("x-real-ip"),
        conn.headers.get("x-forwarded-for"),
        limits.trusted_proxies,
    )
    return Client.of(address, browser_id(conn, settings), session_id)


def session_client(conn: HTTPConnection, session_id: str, token: str | None) -> Client:
    return client_of(conn, session_id if token is not None else None)


async def get_limits(conn: HTTPConnection) -> Limits:
    return cast(Limits, conn.app.state.limits)


async def turn_client(session_id: str, request: Request) -> Client:
    """The client of a turn in the session of the path."""
    return session_client(request, session_id, bearer_token(request))


LimitsDep = Annotated[Limits, Depends(get_limits)]
ClientDep = Annotated[Client, Depends(turn_client)]
