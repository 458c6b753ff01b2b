"""Sessions: create, list the browser's own, read with history, rename, delete."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from fastapi import APIRouter, HTTPException, Query, Request, Response, status

from conversation import history_pages
from conversation.api.catalogue import CatalogueDep, checked_model
from conversation.api.clients import LimitsDep, client_of
from conversation.api.search import SearchDep
from conversation.api.shares import SharesDep
from conversation.auth import browser_id, new_browser_id, not_found, set_browser_cookie
from conversation.deps import (
    SameOrigin,
    SessionDep,
    SettingsDep,
    StoreDep,
    TurnsDep,
    check_length,
)
from conversation.models import (
    CreateSession,
    RenameSession,
    SessionCreated,
    SessionDetail,
    SessionList,
    SessionSummary,
)
from conversation.store import HistoryPage, NoSuchMessage, SessionMeta, Store, digest, utcnow

router = APIRouter(prefix="/api/sessions", tags=["sessions"])

DEFAULT_NAME = "New chat"


def summary(meta: SessionMeta, expires_at: datetime) -> SessionSummary:
    return SessionSummary(
        session_id=meta.session_id,
        name=meta.name,
        created_at=meta.created_at,
        expires_at=expires_at,
        model=meta.model or None,
        named_by_user=meta.named_by_user,
    )


@router.post("", status_code=status.HTTP_201_CREATED, dependencies=[SameOrigin])
async def create_session(
    request: Request,
    response: Response,
    store: StoreDep,
    settings: SettingsDep,
    limits: LimitsDep,
    catalogue: CatalogueDep,
    body: CreateSession | None = None,
) -> SessionCreated:
    """A new chat with the model given (checked against assistant's catalogue), else the
    catalogue's default (none when the catalogue cannot be read: assistant's own then)."""
    body = body or CreateSession()
    name = (body.name or "").strip() or DEFAULT_NAME
    check_length(name, settings.max_name_chars, "The session name")
    system_prompt = (body.system_prompt or "").strip()
    if system_prompt:
        check_length(system_prompt, settings.max_system_prompt_chars, "The system prompt")
    # The cookie names this browser; it owns the sessions it creates.
    browser = browser_id(request, settings) or new_browser_id()
    set_browser_cookie(response, browser, settings)
    if body.model is not None:
        model = await checked_model(catalogue, body.model)
    else:
        model = await catalogue.default_id() or ""
    await limits.count_session(client_of(request))
    meta, token = await store.create_session(name, system_prompt, digest(browser), model)
    return SessionCreated(**summary(meta, store.expires_at()).model_dump(), token=token)


@router.get("")
async def list_sessions(request: Request, store: StoreDep, settings: SettingsDep) -> SessionList:
    """The sessions created by the calling browser (identified by its cookie), newest first."""
    browser = browser_id(request, settings)
    if browser is None:
        return SessionList(sessions=[])
    owned = await store.owned_sessions(digest(browser))
    return SessionList(
        sessions=[summary(meta, utcnow() + timedelta(seconds=ttl)) for meta, ttl in owned]
    )


@router.get("/{session_id}")
async def get_session(
    session: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
    limit: int | None = Query(
        default=None,
        ge=1,
        description="How many messages, newest first (default and maximum: HISTORY_PAGE_SIZE)",
    ),
    before: str | None = Query(
        default=None,
        max_length=64,
        description="A message id: the page ends just before it (older messages)",
    ),
    after: str | None = Query(
        default=None,
        max_length=64,
        description="A message id: the page starts just after it (newer messages)",
    ),
    around: str | None = Query(
        default=None,
        max_length=64,
        description="A message id: the page holds it, about in the middle",
    ),
) -> SessionDetail:
    """The session with a page of its history, oldest first; `has_more` when older messages
    exist (ask again with `before` set to the first message's id), `has_newer` when newer
    ones do (a page read with `after` or `around`: ask again with `after` set to the last
    message's id). At most one of `before`, `after`, `around`."""
    size = min(limit or settings.history_page_size, settings.history_page_size)
    cursors = {"before": before, "after": after, "around": around}
    given = [name for name, value in cursors.items() if value is not None]
    if len(given) > 1:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            [
                {
                    "loc": ["query", given[1]],
                    "msg": f"give at most one of before, after, around (not {' and '.join(given)})",
                    "type": "value_error",
                }
            ],
        )
    sid = session.session_id
    try:
        window = await history_pages.read_page(store, sid, size, before, after, around)
    except NoSuchMessage:
        name = given[0] if given else "before"
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"The message given as `{name}` is not in this session (it may have been replaced).",
        ) from None
    if window is None:
        raise not_found()
    return detail(session, store, window.page, window.has_newer)


def detail(
    session: SessionMeta, store: Store, page: HistoryPage, has_newer: bool = False
) -> SessionDetail:
    """A session with a page of its active path, as `GET /api/sessions/{id}` answers."""
    return SessionDetail(
        **summary(session, store.expires_at()).model_dump(),
        messages=[
            m.in_session(place.index, place.count)
            for m, place in zip(page.messages, page.siblings, strict=True)
        ],
        has_more=page.has_more,
        has_newer=has_newer,
    )


@router.patch("/{session_id}")
async def update_session(
    body: RenameSession,
    session: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
    catalogue: CatalogueDep,
) -> SessionSummary:
    """Rename the chat (a generated title never replaces the name then) and/or change its
    model, for the replies from now on."""
    name = model = None
    if body.name is not None:
        name = check_length(body.name.strip(), settings.max_name_chars, "The session name")
    if body.model is not None:
        model = await checked_model(catalogue, body.model)
    await store.update(session.session_id, name, model)
    changed = dataclasses.replace(
        session,
        name=session.name if name is None else name,
        named_by_user=session.named_by_user or name is not None,
        model=session.model if model is None else model,
    )
    return summary(changed, store.expires_at())


@router.delete("/{session_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_session(
    session: SessionDep, store: StoreDep, turns: TurnsDep, shares: SharesDep, search: SearchDep
) -> Response:
    """Every key of the session goes, its share links and search word list with it; a reply
    being written is stopped, wherever it runs."""
    await shares.revoke_all(session.session_id)
    await search.forget(session)
    live = await store.delete(session)
    if live:
        await turns.stop(session.session_id, live)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
