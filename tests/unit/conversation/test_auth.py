"""Credentials parsing and the CSRF guard."""

from __future__ import annotations

import pytest
from fastapi import Response
from starlette.requests import Request

from conversation.auth import bearer_token, csrf_safe, set_browser_cookie, websocket_token
from conversation.config import Settings


def request(method: str = "GET", query: str = "", **headers: str) -> Request:
    raw = [(k.replace("_", "-").lower().encode(), v.encode()) for k, v in headers.items()]
    scope = {
        "type": "http",
        "method": method,
        "path": "/",
        "query_string": query.encode(),
        "headers": raw,
    }
    return Request(scope)


@pytest.mark.parametrize(
    ("header", "token"),
    [("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Basic abc", None), ("Bearer ", None)],
)
def test_bearer_token(header: str, token: str | None) -> None:
    assert bearer_token(request(authorization=header)) == token


def test_no_authorization_header() -> None:
    assert bearer_token(request()) is None


def test_websocket_token_from_query_or_subprotocol() -> None:
    assert websocket_token(request(query="token=t1")) == ("t1", None)
    offered = request(sec_websocket_protocol="bearer, t2")
    assert websocket_token(offered) == ("t2", "bearer")
    assert websocket_token(request()) == (None, None)


@pytest.mark.parametrize(
    ("method", "headers", "safe"),
    [
        ("GET", {}, True),
        ("DELETE", {}, False),
        ("POST", {"content_type": "text/plain"}, False),
        ("POST", {"content_type": "application/json"}, True),
        ("DELETE", {"x_requested_with": "chatui"}, True),
        ("GET", {"origin": "http://evil.example", "host": "chat.example"}, False),
        ("GET", {"origin": "http://chat.example:81", "host": "chat.example"}, True),
        ("POST", {"origin": "http://evil.example", "content_type": "application/json"}, False),
        # The client chooses X-Forwarded-Host: it must not vouch for a foreign Origin.
        (
            "GET",
            {
                "origin": "http://evil.example",
                "host": "chat.example",
                "x_forwarded_host": "evil.example",
            },
            False,
        ),
        ("GET", {"origin": "null", "host": "chat.example"}, False),
        ("GET", {"sec_fetch_site": "cross-site"}, False),
        ("POST", {"sec_fetch_site": "same-origin", "content_type": "application/json"}, True),
    ],
)
def test_csrf_guard(method: str, headers: dict[str, str], safe: bool) -> None:
    assert csrf_safe(request(method, **headers)) is safe


def test_the_host_prefix_over_https() -> None:
    response = Response()
    set_browser_cookie(response, "b" * 43, Settings(cookie_secure=True))
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("__Host-chat_browser=")
    assert "Path=/;" in cookie and "Secure" in cookie and "Domain" not in cookie
    plain = Response()
    set_browser_cookie(plain, "b" * 43, Settings())
    assert plain.headers["set-cookie"].startswith("chat_browser=")
