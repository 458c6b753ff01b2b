"""Who may use a session: its Bearer token, or the browser cookie that owns it.

Redis keeps only SHA-256 digests of tokens and browser ids, so a leaked Redis dump does not
hand out sessions; a request's digests are compared with them in constant time inside the
Redis script that reads or changes the session (`redis_scripts.py`'s `authorized`), one
round trip. Browsers authenticate with an HttpOnly, SameSite=Strict cookie instead of a
token page scripts could read; cookie-authenticated requests that change state must prove
they come from our own page (CSRF guard).
"""

from __future__ import annotations

import re
import secrets
from urllib.parse import urlsplit

from fastapi import Response
from starlette.requests import HTTPConnection

from conversation.config import Settings
from conversation.errors import AccessDenied
from conversation.store import SESSION_ID, Claim, ClaimRefusal, SessionMeta, Store, digest

BROWSER_ID = re.compile(r"[A-Za-z0-9_-]{43}")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
WS_BEARER_PROTOCOL = "bearer"

MISSING_CREDENTIALS = (
    "This session needs credentials: send the token from POST /api/sessions as "
    "'Authorization: Bearer <token>'."
)
FOREIGN_ORIGIN = (
    "Requests from pages on other sites are refused: use this chat from its own page, or "
    "call the API from a program (no Origin header)."
)
CSRF_REFUSED = (
    "Requests authenticated by the browser cookie must send a JSON body "
    "(Content-Type: application/json) or an X-Requested-With header."
)


def bearer_token(conn: HTTPConnection) -> str | None:
    scheme, _, value = conn.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def cookie_name(settings: Settings) -> str:
    """Over HTTPS the `__Host-` prefix: browsers then refuse the cookie unless it is Secure,
    for the whole host (Path=/) and set without Domain, so no sibling subdomain can plant or
    overwrite it."""
    return f"__Host-{settings.cookie_name}" if settings.cookie_secure else settings.cookie_name


def browser_id(conn: HTTPConnection, settings: Settings) -> str | None:
    value = conn.cookies.get(cookie_name(settings))
    return value if value and BROWSER_ID.fullmatch(value) else None


def new_browser_id() -> str:
    return secrets.token_urlsafe(32)


def set_browser_cookie(response: Response, value: str, settings: Settings) -> None:
    response.set_cookie(
        cookie_name(settings),
        value,
        max_age=settings.cookie_max_age,
        path="/" if settings.cookie_secure else "/api",
        secure=settings.cookie_secure,
        httponly=True,
        samesite="strict",
    )


def same_origin(conn: HTTPConnection) -> bool:
    """A page from another site must not drive a browser's cookie or spend the operator's
    model. Browsers name the page in Origin on every cross-origin request and say where a
    request comes from in Sec-Fetch-Site; clients that are not browsers send neither.

    Compared with Host, which nginx sets from the request line: X-Forwarded-Host is the
    client's to choose, so a forged one could make any Origin look like ours.
    """
    if conn.headers.get("sec-fetch-site") == "cross-site":
        return False
    origin = conn.headers.get("origin")
    if origin is None:
        return True
    # nginx forwards $host without the port; compare host names only.
    hostname = urlsplit(f"//{conn.headers.get('host', '')}").hostname
    return origin != "null" and urlsplit(origin).hostname == hostname


def check_same_origin(conn: HTTPConnection) -> None:
    """For requests that need no credentials but change state or spend the model."""
    if not same_origin(conn):
        raise AccessDenied("forbidden", FOREIGN_ORIGIN)


def csrf_safe(conn: HTTPConnection) -> bool:
    method = conn.scope.get("method", "GET")
    if method in SAFE_METHODS:
        return same_origin(conn)
    json_body = conn.headers.get("content-type", "").startswith("application/json")
    return same_origin(conn) and (json_body or "x-requested-with" in conn.headers)


def not_found(what: str = "Session") -> AccessDenied:
    return AccessDenied(
        "not_found",
        f"{what} not found, or your credentials do not grant access to it.",
    )


def claim_of(conn: HTTPConnection, session_id: str, settings: Settings, token: str | None) -> Claim:
    """The credentials `conn` presents for `session_id`, digested; Redis checks them.

    `unauthorized` without a token or cookie; a session id that cannot exist gets the
    `not_found` any session the credentials do not grant gets, without asking Redis.
    """
    cookie = browser_id(conn, settings)
    if token is None and cookie is None:
        raise AccessDenied("unauthorized", MISSING_CREDENTIALS)
    if not SESSION_ID.fullmatch(session_id):
        raise not_found()
    return Claim(
        session_id,
        token_hash=digest(token) if token is not None else "",
        owner_hash=digest(cookie) if cookie is not None else "",
        cookie_allowed=csrf_safe(conn),
    )


def refused(reason: ClaimRefusal) -> AccessDenied:
    """The same refusal for a wrong token and a missing session, so neither reveals the
    other."""
    if reason == "csrf":
        return AccessDenied("forbidden", CSRF_REFUSED)
    return not_found()


async def authorize(claim: Claim, store: Store) -> SessionMeta:
    """The session if `claim` grants it (its token, or the browser cookie that owns it)."""
    meta = await store.get_meta(claim)
    if isinstance(meta, SessionMeta):
        return meta
    raise refused(meta)


def websocket_token(conn: HTTPConnection) -> tuple[str | None, str | None]:
    """The token from `?token=` or the subprotocols ["bearer", <token>], and the
    subprotocol to accept."""
    token = conn.query_params.get("token")
    offered = [p.strip() for p in conn.headers.get("sec-websocket-protocol", "").split(",")]
    if WS_BEARER_PROTOCOL in offered:
        rest = [p for p in offered if p and p != WS_BEARER_PROTOCOL]
        if token is None and rest:
            token = rest[0]
        return token, WS_BEARER_PROTOCOL
    return token or None, None
