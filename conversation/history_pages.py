"""Pages of a chat's active path anywhere in it, not only from the newest back: the page
around a message (a search result opens its chat there) and the page after one (reading on
towards the newest from there).

Both are Store.history's page ending just before a message, with that message found by its
position on the path. The path can change between the reads (a reply added, another
branch shown): a page that does not hold what it should is read again.
"""

from __future__ import annotations

from dataclasses import dataclass

from conversation.errors import ConversationError
from conversation.store import HistoryPage, NoSuchMessage, Store

# Reads of a page whose path keeps changing under it before the caller is told to retry.
ATTEMPTS = 3


class NotOnPath(ConversationError):
    """The session holds the message, on a branch it does not show."""

    def __init__(self, sid: str, cursor: str) -> None:
        super().__init__(
            "conflict",
            f"The message given as `{cursor}` is on a branch this chat does not show: show "
            f"it first (PATCH /api/sessions/{sid}/messages/<id>/active).",
        )


class PathChanging(ConversationError):
    """The active path changed at every attempt to read the page."""

    def __init__(self) -> None:
        super().__init__("conflict", "The chat changed while its history was read: ask again.")


@dataclass(frozen=True, slots=True)
class Window:
    page: HistoryPage
    has_newer: bool  # newer messages exist: read on with `after` the page's last message


async def read_page(
    store: Store,
    sid: str,
    size: int,
    before: str | None = None,
    after: str | None = None,
    around: str | None = None,
) -> Window | None:
    """The page a cursor names (at most one given; none: the newest `size` messages). None
    when the session is gone; NoSuchMessage, NotOnPath as for `page_around`."""
    if around is not None:
        return await page_around(store, sid, around, size)
    if after is not None:
        return await page_after(store, sid, after, size)
    try:
        page = await store.history(sid, size, before)
    except NoSuchMessage:
        if before is not None and (await store.path_place(sid, before)).held:
            raise NotOnPath(sid, "before") from None
        raise
    return None if page is None else Window(page, has_newer=False)


async def page_around(store: Store, sid: str, mid: str, size: int) -> Window | None:
    """At most `size` messages of the active path with `mid` about in the middle; None when
    the session is gone. NoSuchMessage: the session does not hold `mid`; NotOnPath: on
    another branch."""
    for _ in range(ATTEMPTS):
        index, length = await _place(store, sid, mid, "around")
        start = max(index - size // 2, 0)
        end = min(start + size, length) - 1
        start = max(end - size + 1, 0)
        window = await _ending_at(store, sid, end, end - start + 1, length)
        if window is None:
            return None
        if any(m.id == mid for m in window.page.messages):
            return window
    raise PathChanging()


async def page_after(store: Store, sid: str, mid: str, size: int) -> Window | None:
    """At most `size` messages of the active path just after `mid`, oldest first (none
    when it is the newest); errors as for `page_around`."""
    for _ in range(ATTEMPTS):
        index, length = await _place(store, sid, mid, "after")
        end = min(index + size, length - 1)
        # The page starts at `mid` itself, which tells whether the path still runs there.
        window = await _ending_at(store, sid, end, end - index + 1, length)
        if window is None:
            return None
        messages = window.page.messages
        if messages and messages[0].id == mid:
            page = HistoryPage(messages[1:], has_more=True, siblings=window.page.siblings[1:])
            return Window(page, window.has_newer)
    raise PathChanging()


async def _place(store: Store, sid: str, mid: str, cursor: str) -> tuple[int, int]:
    place = await store.path_place(sid, mid)
    if place.index is None:
        raise NotOnPath(sid, cursor) if place.held else NoSuchMessage(mid)
    return place.index, place.length


async def _ending_at(store: Store, sid: str, end: int, count: int, length: int) -> Window | None:
    """The `count` messages ending at index `end` of a path that was `length` long; an
    empty window when the path changed so that this cannot be read."""
    before = await store.path_id_at(sid, end + 1) if end + 1 < length else None
    if end + 1 < length and before is None:
        return Window(HistoryPage([], has_more=False, siblings=[]), has_newer=False)
    try:
        page = await store.history(sid, count, before)
    except NoSuchMessage:
        return Window(HistoryPage([], has_more=False, siblings=[]), has_newer=False)
    if page is None:
        return None
    return Window(page, has_newer=before is not None)
