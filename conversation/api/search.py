"""Search the caller's own chats: the browser's (cookie) and the Bearer token's."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from starlette.requests import HTTPConnection

from conversation.api.callers import credentials, token_session
from conversation.config import Settings
from conversation.deps import SettingsDep, StoreDep
from conversation.search import (
    MOST_QUERY_WORDS,
    NothingToSearch,
    Scope,
    Search,
    SearchResults,
    owner_of,
)
from conversation.store import Store, digest

router = APIRouter(tags=["search"])


async def get_search(conn: HTTPConnection) -> Search:
    return cast(Search, conn.app.state.search)


SearchDep = Annotated[Search, Depends(get_search)]


@router.get("/api/search")
async def search(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    searcher: SearchDep,
    q: Annotated[str, Query(min_length=1, description="Words; each matches words it begins")],
    limit: Annotated[int | None, Query(ge=1, description="At most SEARCH_MAX_RESULTS")] = None,
) -> SearchResults:
    """Matching titles and messages, newest chat first; each names the chat and the message
    to open, with a snippet in segments (`hit`: a query word matched; never HTML)."""
    if len(q) > settings.search_max_query_chars:
        raise invalid_query(f"at most {settings.search_max_query_chars} characters")
    scopes = await callers_scopes(request, store, settings)
    most = min(limit or settings.search_max_results, settings.search_max_results)
    try:
        return await searcher.search(scopes, q, most)
    except NothingToSearch:
        raise invalid_query(
            f"give between 1 and {MOST_QUERY_WORDS} words (letters or digits)"
        ) from None


async def callers_scopes(conn: HTTPConnection, store: Store, settings: Settings) -> list[Scope]:
    """The browser's chats (cookie) and the Bearer token's chat."""
    token, browser = credentials(conn, settings)
    scopes: list[Scope] = []
    if browser is not None:
        scopes.append(Scope(digest(browser), [], browser=True))
    if token is not None:
        own = await token_session(store, token)
        scopes.append(Scope(owner_of(own), [own.session_id]))
    return scopes


def invalid_query(msg: str) -> HTTPException:
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        [{"loc": ["query", "q"], "msg": msg, "type": "value_error"}],
    )
