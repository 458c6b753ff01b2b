"""FastAPI dependencies: the clients made in the lifespan, and the session a request claims."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from conversation.assistant_client import AssistantClient
from conversation.auth import authorize, bearer_token, check_same_origin, claim_of
from conversation.config import Settings
from conversation.errors import InvalidInput
from conversation.store import Claim, SessionMeta, Store
from conversation.turns import Turns

# Async on purpose: FastAPI runs plain `def` dependencies in its thread pool, a thread hop
# per dependency per request.


async def get_settings(conn: HTTPConnection) -> Settings:
    return cast(Settings, conn.app.state.settings)


async def get_store(conn: HTTPConnection) -> Store:
    return cast(Store, conn.app.state.store)


async def get_turns(conn: HTTPConnection) -> Turns:
    return cast(Turns, conn.app.state.turns)


async def get_assistant(conn: HTTPConnection) -> AssistantClient:
    return cast(AssistantClient, conn.app.state.assistant)


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
TurnsDep = Annotated[Turns, Depends(get_turns)]
AssistantDep = Annotated[AssistantClient, Depends(get_assistant)]


async def session_claim(session_id: str, request: Request, settings: SettingsDep) -> Claim:
    return claim_of(request, session_id, settings, bearer_token(request))


# The request's credentials for the session in its path, not checked yet: a turn's start
# checks them in the same Redis round trip that starts it.
ClaimDep = Annotated[Claim, Depends(session_claim)]


async def session_access(claim: ClaimDep, store: StoreDep) -> SessionMeta:
    return await authorize(claim, store)


SessionDep = Annotated[SessionMeta, Depends(session_access)]


def check_length(value: str, limit: int, what: str) -> str:
    if len(value) > limit:
        raise InvalidInput(
            f"{what} is {len(value)} characters long; the limit is {limit}. "
            "Shorten it or split it into several messages.",
        )
    if not value.strip():
        raise InvalidInput(f"{what} is empty.")
    return value


async def same_origin_only(conn: HTTPConnection) -> None:
    """Routes that need no credentials but set a cookie or spend the model: not from a page
    on another site (a simple cross-site form post would otherwise reach them)."""
    check_same_origin(conn)


SameOrigin = Depends(same_origin_only)
