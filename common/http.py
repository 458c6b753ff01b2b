"""The HTTP client conversation calls assistant with: one pooled aiohttp session.

aiohttp's client, not httpx: measured on a relay hop it adds about half the latency httpx
does, and the stack's first-token budget depends on it (bench scenario 1). One session
per process, created in the lifespan, keeps connections alive between requests. Assistant
calls its OpenAI-compatible model servers with it too, one session per provider
(assistant/providers/openai_compatible.py says why not the `openai` SDK).
"""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import aiohttp

log = logging.getLogger(__name__)


def pooled_session(
    *,
    connect_timeout: float,
    read_timeout: float | None,
    max_connections: int,
    keepalive_timeout: float,
    headers: dict[str, str] | None = None,
) -> aiohttp.ClientSession:
    """A keep-alive session; `connect_timeout` also bounds the wait for a pooled connection.

    Set `keepalive_timeout` below the server's own idle timeout (uvicorn's default is 5 s):
    reusing a connection the server is closing at that moment fails the request.
    """
    timeout = aiohttp.ClientTimeout(
        total=None, connect=connect_timeout, sock_connect=connect_timeout, sock_read=read_timeout
    )
    connector = aiohttp.TCPConnector(limit=max_connections, keepalive_timeout=keepalive_timeout)
    trace = aiohttp.TraceConfig()
    trace.on_connection_reuseconn.append(_mark_reused)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        headers=headers,
        raise_for_status=False,
        trace_configs=[trace],
    )


async def _mark_reused(
    _: aiohttp.ClientSession,
    ctx: SimpleNamespace,
    __: aiohttp.TraceConnectionReuseconnParams,
) -> None:
    """Note on the request's probe that it went out on a pooled keep-alive connection."""
    probe = ctx.trace_request_ctx
    if isinstance(probe, _Probe):
        probe.reused = True


class _Probe:
    __slots__ = ("reused",)

    def __init__(self) -> None:
        self.reused = False


async def post(
    http: aiohttp.ClientSession, url: str, body: bytes | str, headers: dict[str, str] | None = None
) -> aiohttp.ClientResponse:
    """POST; once more if a pooled connection turned out to be closed.

    A keep-alive connection the server closed while it sat idle fails only when used:
    reset or closed before a single byte of response. The server then never read the
    request, or read it and answered nothing, so nothing was generated and sending it
    again (on another connection) is safe. Any other failure is the caller's.
    """
    probe = _Probe()
    kwargs: dict[str, Any] = {"data": body, "headers": headers}
    try:
        return await http.post(url, trace_request_ctx=probe, **kwargs)
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
        if not probe.reused or isinstance(exc, aiohttp.ClientConnectorError):
            raise
        log.info("pooled connection to %s was closed (%r); sending again", url, exc)
    return await http.post(url, **kwargs)
