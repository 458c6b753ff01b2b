"""The generator: concurrent chat clients, each recording what it was told.

Each client is a thread with its own session doing a few turns, as a real API client would:
it sends a message (with a client_message_id, so a resend after a broken request is never
stored twice), reads the SSE answer, and when the stream breaks it resumes the reply from its
last event id, on nginx or directly on a replica (any replica serves any reply), until the
reply ends or the turn's bound runs out. Refusals that say "try again" (409 while a reply is
still held, 429, 502-504) are retried; a failed reply is regenerated, as its error says.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass

import httpx

from tests.integration.faults.history import Attempt, Recorder, Reply, Terminal, Turn
from tests.support.sse import iter_events

WORDS = 30  # the fake model echoes the message a word at a time: a reply of ~WORDS deltas
RETRY_PAUSE = 0.1  # the client's pace between attempts (a real client's backoff)
RETRIED = (409, 429, 502, 503, 504)
# A failed reply is regenerated (what the API's error messages tell a person to do) this many
# times at most; after assistant_unavailable or assistant_not_ready only once readiness is 200.
MAX_REGENERATIONS = 3
DROPPED = "dropped by the client"
WAIT_READY = ("assistant_unavailable", "assistant_not_ready")
TIMEOUT = httpx.Timeout(10.0, connect=3.0)  # heartbeats every 0.5 s: 10 s of silence is a hang


@dataclass
class Plan:
    clients: int
    turns: int
    entries: list[str]  # where clients send (nginx, or the replicas), the next after a failure
    resume_at: list[str]  # where a broken stream is resumed, in turn: nginx, each replica
    bound: float  # seconds a turn may take, retries and resumes included
    disconnect_after: int | None = None  # the client drops each reply after this many deltas
    # ... and walks away from its first turn's reply instead of resuming it (its next
    # message is then refused with 409 until that reply is written to its end).
    abandon: bool = False


class Client:
    def __init__(self, number: int, plan: Plan, recorder: Recorder) -> None:
        self.number = number
        self.plan = plan
        self.recorder = recorder
        self.http = httpx.Client(timeout=TIMEOUT)
        self.session_id = ""
        self.auth: dict[str, str] = {}
        self._entries = number  # clients start at different entries
        self._resumes = number  # and resume at different places: nginx, either replica

    def run(self) -> None:
        try:
            self._create_session()
            for index in range(self.plan.turns):
                self._turn(index)
        finally:
            self.http.close()

    def _create_session(self) -> None:
        deadline = time.monotonic() + self.plan.bound
        while True:
            try:
                r = self.http.post(f"{self._entry()}/api/sessions", json={})
                if r.status_code == 201:
                    data = r.json()
                    self.session_id, self.auth = (
                        data["session_id"],
                        {"Authorization": f"Bearer {data['token']}"},
                    )
                    self.recorder.session(self.session_id, data["token"])
                    return
            except httpx.HTTPError:
                self._entries += 1
            if time.monotonic() > deadline:
                raise RuntimeError(f"client {self.number} could not create a session")
            time.sleep(RETRY_PAUSE)

    def _turn(self, index: int) -> None:
        words = " ".join(f"w{k}" for k in range(WORDS))
        text = f"client {self.number} turn {index}: {words}"
        cmid = uuid.uuid4().hex
        turn = self.recorder.begin(
            Turn(self.number, index, self.session_id, text, time.monotonic())
        )
        deadline = turn.sent_at + self.plan.bound
        regenerate = False
        while time.monotonic() < deadline:
            reply = turn.reply
            if reply is not None and reply.terminal is not None:
                if reply.terminal.event == "done" or len(turn.replies) > MAX_REGENERATIONS:
                    return
                if reply.terminal.status in WAIT_READY and not self._ready():
                    time.sleep(RETRY_PAUSE)
                    continue
                regenerate = True
            attempt, request = self._next_request(turn, cmid, regenerate)
            turn.attempts.append(attempt)
            if not self._attempt(turn, attempt, request):
                return  # refused for good: the turn ends as it is
            if self.plan.abandon and index == 0 and attempt.outcome == DROPPED:
                turn.abandoned = True
                return
            if turn.reply is not None and turn.reply is not reply:
                regenerate = False  # the new reply has started
            if turn.terminal is None or turn.terminal.event == "error":
                time.sleep(RETRY_PAUSE)

    def _next_request(
        self, turn: Turn, cmid: str, regenerate: bool
    ) -> tuple[Attempt, httpx.Request]:
        """Send the message (again), regenerate a failed reply, or resume a broken one."""
        session = f"/api/sessions/{self.session_id}"
        if regenerate:
            entry = self._entry()
            attempt = Attempt("regenerate", entry, None)
            return attempt, self.http.build_request(
                "POST", f"{entry}{session}/regenerate", headers=self.auth
            )
        reply = turn.reply
        if reply is None:
            entry = self._entry()
            attempt = Attempt("send", entry, None)
            body = {"content": turn.text, "client_message_id": cmid}
            return attempt, self.http.build_request(
                "POST", f"{entry}{session}/messages", json=body, headers=self.auth
            )
        target = self.plan.resume_at[self._resumes % len(self.plan.resume_at)]
        self._resumes += 1
        attempt = Attempt("resume", target, reply.last_offset)
        headers = {**self.auth, "Last-Event-ID": str(reply.last_offset)}
        return attempt, self.http.build_request(
            "GET", f"{target}{session}/messages/{reply.message_id}/stream", headers=headers
        )

    def _entry(self) -> str:
        return self.plan.entries[self._entries % len(self.plan.entries)]

    def _ready(self) -> bool:
        """What the API tells a client whose reply failed for want of assistant: poll
        readiness, then regenerate."""
        try:
            r = self.http.get(f"{self._entry()}/api/health/ready")
        except httpx.HTTPError:
            self._entries += 1
            return False
        return r.status_code == 200

    def _attempt(self, turn: Turn, attempt: Attempt, request: httpx.Request) -> bool:
        """Send one request and record its events; False when retrying is pointless."""
        try:
            response = self.http.send(request, stream=True)
        except httpx.HTTPError as exc:
            attempt.outcome = f"broken: {exc!r}"
            self._entries += 1  # that door is shut: the next request tries another
            return True
        try:
            if response.status_code != 200:
                attempt.outcome = f"status {response.status_code}: {response.read()[:200]!r}"
                if response.status_code in (502, 503, 504):
                    self._entries += 1
                return response.status_code in RETRIED
            attempt.outcome = self._read(turn, attempt, response)
        except httpx.HTTPError as exc:
            attempt.outcome = f"broken: {exc!r}"
        finally:
            response.close()
        return True

    def _read(self, turn: Turn, attempt: Attempt, response: httpx.Response) -> str:
        drop_after = self.plan.disconnect_after if attempt.kind != "resume" else None
        seen = 0
        for event in iter_events(response.iter_lines()):
            offset = int(event.id or 0)
            data = event.json()
            reply = turn.reply
            if event.event == "user" and turn.user_id is None:
                turn.user_id, turn.acked_at = data["id"], time.monotonic()
            elif event.event == "start" and (reply is None or attempt.kind == "regenerate"):
                turn.replies.append(Reply(data["message_id"], offset))
            elif event.event == "delta" and reply is not None:
                self.recorder.delta(reply, offset, data["text"])
                seen += 1
                if drop_after is not None and seen >= drop_after:
                    self.recorder.fault()
                    return DROPPED
            elif event.event in ("done", "error") and reply is not None:
                reply.terminal = Terminal(event.event, offset, data)
                reply.ended_at = time.monotonic()
                return "ended"
        return "broken: the stream ended without done or error"


def start_clients(plan: Plan, recorder: Recorder) -> list[threading.Thread]:
    threads = [
        threading.Thread(target=Client(n, plan, recorder).run, name=f"client-{n}", daemon=True)
        for n in range(plan.clients)
    ]
    for thread in threads:
        thread.start()
    return threads
