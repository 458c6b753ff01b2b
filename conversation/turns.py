"""Chat turns: send, regenerate, edit, resume and cancel, shared by SSE, WebSocket and the
tutorials' routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import cast

from common.protocol import ChatMessage
from conversation.auth import not_found, refused
from conversation.config import Settings
from conversation.errors import ConversationError, TurnError
from conversation.events import Event, start_event, user_event
from conversation.generation import outbox_events
from conversation.hub import Hub
from conversation.limits import Admission, Client, Limits, session_full
from conversation.models import StoredMessage
from conversation.store import (
    Claim,
    Store,
    TurnDuplicate,
    TurnMode,
    TurnRefused,
    new_message,
)
from conversation.streams import Events, from_generation, from_history, from_redis

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Turn:
    reply_id: str
    first: list[Event]
    events: Events | None


def busy(sid: str, holder: str) -> TurnError:
    """The refusal of a turn while reply `holder` is being written in the session."""
    return TurnError(
        "conflict",
        f"A reply is already being written in this session (message {holder}). "
        "Wait for it to finish, or stop it with "
        f"POST /api/sessions/{sid}/messages/{holder}/cancel, then try again.",
    )


def _refusal(sid: str, outcome: TurnRefused, settings: Settings) -> ConversationError:
    if outcome.reason == "busy":
        return busy(sid, outcome.holder)
    if outcome.reason == "empty":
        return TurnError(
            "conflict",
            "There is no user message to answer in this session: send a message first.",
        )
    if outcome.reason == "not_on_path":
        return TurnError(
            "not_found",
            "message_id: no such message on the chat's active path (reload the chat: "
            "another branch may be shown).",
        )
    if outcome.reason == "not_user":
        return TurnError("conflict", "message_id: only a user message can be edited.")
    if outcome.reason == "not_reply":
        return TurnError("conflict", "message_id: only a reply can be regenerated.")
    if outcome.reason == "not_continuable":
        return TurnError(
            "conflict",
            "Only the last reply of a session can be continued, and only when it stopped "
            "early (cut at the length limit, stopped, or interrupted).",
        )
    if outcome.reason == "full":
        return session_full(settings.max_messages_per_session)
    if outcome.reason == "full_tree":
        return session_full(settings.max_stored_messages_per_session, versions=True)
    return refused(outcome.reason)


# Seconds a client refused for overload is asked to wait: replies take seconds, so a slot
# is likely free by then.
RETRY_AFTER = 1


def overloaded() -> TurnError:
    return TurnError(
        "overloaded",
        "This server cannot start another reply right now (it is writing as many as it can, "
        f"or restarting); your message was not saved. Send it again in {RETRY_AFTER} s.",
        RETRY_AFTER,
    )


class Turns:
    def __init__(self, store: Store, hub: Hub, settings: Settings, limits: Limits) -> None:
        self.store = store
        self.hub = hub
        self.settings = settings
        self.limits = limits
        self._block_ms = int(min(settings.heartbeat_interval, settings.generation_lease / 2) * 1000)

    # A turn starts from a claim, not an authorized session: the script that starts it
    # checks the credentials too, so a turn's start is one Redis round trip. `client`: who
    # asks, counted against its limits (or its turn already counted, by a caller that had
    # to count it before making the session).

    async def send(
        self,
        claim: Claim,
        content: str,
        client_message_id: str | None,
        client: Client | Admission,
    ) -> Turn:
        user = new_message("user", content, "complete")
        return await self._begin(claim, "message", user, client_message_id, client)

    async def regenerate(
        self, claim: Claim, client: Client, reply_id: str = "", model: str | None = None
    ) -> Turn:
        """A new version of a reply on the active path ("": the last); the old one is kept.
        `model`: another model for this version only (None: the chat's)."""
        user = new_message("user", "", "complete")
        return await self._begin(
            claim, "regenerate", user, None, client, target=reply_id, model=model
        )

    async def edit(self, claim: Claim, message_id: str, content: str, client: Client) -> Turn:
        """A new version of a user message on the active path, and a reply to it; the old
        version and what followed it are kept on their branch."""
        version = new_message("user", content, "complete")
        return await self._begin(claim, "edit", version, None, client, target=message_id)

    async def extend(self, claim: Claim, message_id: str, client: Client) -> Turn:
        """Continue the last reply where it stopped; its events go on from its length."""
        anchor = new_message("user", "", "complete")
        return await self._begin(claim, "continue", anchor, None, client, reply_id=message_id)

    async def _begin(
        self,
        claim: Claim,
        mode: TurnMode,
        user: StoredMessage,
        client_message_id: str | None,
        client: Client | Admission,
        reply_id: str | None = None,
        target: str = "",
        model: str | None = None,
    ) -> Turn:
        # Refused before anything is stored: a full replica answers at once and loses
        # nothing (the message is not half-sent, a regenerate keeps the old reply), instead
        # of queueing the turn behind the others until the client times out. The process's
        # own slot first: it costs no round trip.
        admission = client if isinstance(client, Admission) else None
        reserved = started = False
        try:
            if not self.hub.reserve():
                raise overloaded()
            reserved = True
            if admission is None:
                admission = await self.limits.admit(cast(Client, client))
            turn, started = await self._begin_reserved(
                claim, mode, user, client_message_id, admission, reply_id, target, model
            )
        finally:
            if not started:
                if reserved:
                    self.hub.release()
                if admission is not None:
                    await admission.release(started=False)
        return turn

    async def _begin_reserved(
        self,
        claim: Claim,
        mode: TurnMode,
        user: StoredMessage,
        client_message_id: str | None,
        admission: Admission,
        reply_id: str | None,
        target: str,
        model: str | None,
    ) -> tuple[Turn, bool]:
        """The turn, and whether it started a generation (which then holds the slot)."""
        sid = claim.session_id
        reply = new_message("assistant", "", "streaming")
        if reply_id is not None:
            reply.id = reply_id
        outcome = await self.store.begin_turn(
            claim,
            mode,
            user,
            reply,
            client_message_id,
            self.settings.context_token_budget,
            target,
        )
        if isinstance(outcome, TurnRefused):
            raise _refusal(sid, outcome, self.settings)
        if isinstance(outcome, TurnDuplicate):
            first = [user_event(outcome.user.public())]
            if outcome.reply is None:
                return Turn("", first, None), False
            replay = await self.resume(sid, outcome.reply.id, None)
            return Turn(replay.reply_id, first + replay.first, replay.events), False
        history = [ChatMessage(role=m.role, content=m.content) for m in outcome.context]
        if outcome.system_prompt:
            history.insert(0, ChatMessage(role="system", content=outcome.system_prompt))
        if mode == "continue":
            reply = outcome.user  # the reply itself, with the text it has, by its model
        else:
            reply.parent = outcome.user.id  # as stored: the finished reply is stored whole
        reply.model = reply.model or model or outcome.chat.model
        # Only a chat's first exchange (or its first answered one) is the whole context.
        title = (
            self.settings.titles
            and outcome.chat.wants_title
            and mode != "continue"
            and len(outcome.context) == 1
        )
        gen = self.hub.start(sid, reply, history, admission, title)
        # Subscribe before yielding to the loop, so not a single delta is missed.
        outbox = gen.subscribe(gen.length)
        # Yield once so the generation sends its request to assistant now: assistant and
        # the model then work (on other cores) while this task answers the client's
        # request, instead of after it. Time to first token is the sum otherwise.
        await asyncio.sleep(0)
        first = [] if mode in ("regenerate", "continue") else [user_event(outcome.user.public())]
        start = start_event(reply.id, gen.length)
        return Turn(reply.id, [*first, start], outbox_events(gen, outbox)), True

    async def resume(self, sid: str, message_id: str, offset: int | None) -> Turn:
        """A reply's events after `offset` characters (None: from its `start`)."""
        first = [start_event(message_id)] if offset is None else []
        at = offset or 0
        gen = self.hub.get(sid, message_id)
        if gen is not None:
            return Turn(message_id, first, from_generation(gen, at))
        message = await self._reply(sid, message_id)
        if message.status == "streaming":
            events = from_redis(self.store, sid, message_id, at, self._block_ms)
        else:
            events = from_history(message, at)
        return Turn(message_id, first, events)

    async def _reply(self, sid: str, message_id: str) -> StoredMessage:
        message = await self.store.check_live(sid, message_id)
        if message is None or message.role != "assistant":
            raise not_found("Reply")
        return message

    async def stop(self, sid: str, message_id: str) -> None:
        """Stop a reply's generation wherever it runs, without waiting for it."""
        if self.hub.cancel_local(sid, message_id) is None:
            await self.store.publish_cancel(sid, message_id)

    async def cancel(self, sid: str, message_id: str) -> StoredMessage:
        """Stop a reply wherever it is being written; returns the stored (partial) reply."""
        gen = self.hub.cancel_local(sid, message_id)
        if gen is not None:
            return await gen.finished()
        message = await self._reply(sid, message_id)
        if message.status != "streaming":
            return message
        await self.store.publish_cancel(sid, message_id)
        # The writer ends the stream when it has stopped; a dead writer is detected instead.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.settings.generation_lease * 3):
                async for batch in from_redis(self.store, sid, message_id, 0, self._block_ms):
                    if batch and batch[-1].terminal:
                        break
        return await self._reply(sid, message_id)


async def final_event(turn: Turn) -> Event | None:
    """Wait for a turn to end and return its `done` or `error` event."""
    if turn.events is not None:
        async for batch in turn.events:
            if batch and batch[-1].terminal:
                return batch[-1]
    return None
