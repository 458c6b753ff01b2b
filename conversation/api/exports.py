"""Export one chat or all of the caller's, and import files of chats."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from starlette.requests import HTTPConnection

from conversation.api.callers import credentials, token_session
from conversation.api.clients import LimitsDep, client_of
from conversation.api.search import SearchDep
from conversation.auth import (
    browser_id,
    new_browser_id,
    set_browser_cookie,
)
from conversation.config import Settings
from conversation.deps import SameOrigin, SessionDep, SettingsDep, StoreDep
from conversation.exports import bundle, chat_document, markdown
from conversation.import_formats import ImportInvalid, ImportTooLarge, parse
from conversation.imports import ImportResult, import_chats
from conversation.store import SessionMeta, Store, digest, utcnow

router = APIRouter(tags=["export and import"])

Format = Literal["md", "json"]


def download(body: str, filename: str, media_type: str) -> Response:
    return Response(
        body,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def file_stem(name: str) -> str:
    """A file name people recognise, from characters every system accepts."""
    stem = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()[:60]
    return stem or "chat"


@router.get("/api/sessions/{session_id}/export")
async def export_session(
    session: SessionDep,
    store: StoreDep,
    format: Annotated[Format, Query(description="md: the path shown; json: every message")] = (
        "json"
    ),
) -> Response:
    doc = await chat_document(store, session)
    stem = file_stem(session.name)
    if format == "md":
        return download(markdown(doc), f"{stem}.md", "text/markdown; charset=utf-8")
    return download(
        doc.model_dump_json(by_alias=True, indent=2), f"{stem}.json", "application/json"
    )


async def callers_sessions(
    conn: HTTPConnection, store: Store, settings: Settings
) -> list[SessionMeta]:
    """The browser's sessions and the Bearer token's session, without repeats."""
    token, browser = credentials(conn, settings)
    found: dict[str, SessionMeta] = {}
    if browser is not None:
        for meta, _ in await store.owned_sessions(digest(browser)):
            found[meta.session_id] = meta
    if token is not None:
        own = await token_session(store, token)
        found.setdefault(own.session_id, own)
    return list(found.values())


@router.get("/api/export")
async def export_all(request: Request, store: StoreDep, settings: SettingsDep) -> Response:
    """Every chat of the calling browser (cookie) or Bearer token, as one JSON file."""
    sessions = await callers_sessions(request, store, settings)
    doc = await bundle(store, sessions)
    name = f"chats-{utcnow():%Y-%m-%d}.json"
    return download(doc.model_dump_json(by_alias=True, indent=2), name, "application/json")


@router.post("/api/import", dependencies=[SameOrigin])
async def import_file(
    request: Request,
    response: Response,
    store: StoreDep,
    settings: SettingsDep,
    limits: LimitsDep,
    searcher: SearchDep,
) -> ImportResult:
    """Our JSON export (one chat or a bundle) or ChatGPT's conversations.json, as the body.
    The chats become the calling browser's (the cookie is set when missing, as creating a
    session does); each is reported imported or skipped, with why."""
    if not request.headers.get("content-type", "").startswith("application/json"):
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "Send the file as application/json."
        )
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > settings.import_max_bytes:
            raise too_large(settings.import_max_bytes)
    try:
        candidates = parse(bytes(raw), settings)
    except ImportTooLarge:
        raise too_large(settings.import_max_bytes) from None
    except ImportInvalid as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, exc.errors) from None
    browser = browser_id(request, settings) or new_browser_id()
    set_browser_cookie(response, browser, settings)
    # One import counts as one session created (the browser's own limit still bounds it).
    await limits.count_session(client_of(request))
    result = await import_chats(store, digest(browser), candidates)
    # Many chats at once would make the next search index them all while the person waits.
    await searcher.add(digest(browser), [chat.session_id for chat in result.imported])
    return result


def too_large(limit: int) -> HTTPException:
    return HTTPException(
        status.HTTP_413_CONTENT_TOO_LARGE,
        f"The file is larger than {limit} bytes, the most one import reads: split it.",
    )
