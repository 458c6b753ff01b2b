"""The peers of a run: installed (or found cached), started on the run's fake upstream, and
described in the results' `peers` section, or the exact reason one could not run."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench import procs
from bench.peers import litellm, open_webui
from bench.peers.install import Installed, PeerUnavailable
from bench.routes import OpenAIRoute
from tests.support.servers import Server

LITELLM = "litellm"
OPEN_WEBUI = "open-webui"


@dataclass(frozen=True)
class Peer:
    """A running peer and how a chat completion is asked of it."""

    name: str
    server: Server
    path: str
    headers: dict[str, str]
    model: str
    does: str  # which of ours does the same job: "assistant" or "stack"

    def route(self, http: aiohttp.ClientSession) -> OpenAIRoute:
        return OpenAIRoute(self.name, http, self.server.url, self.path, self.headers)

    def rss_bytes(self) -> int:
        return procs.usage(self.server.proc.pid).rss_bytes


@dataclass
class Peers:
    running: dict[str, Peer] = field(default_factory=dict)
    status: dict[str, dict[str, Any]] = field(default_factory=dict)

    def get(self, name: str) -> Peer | None:
        return self.running.get(name)

    def all(self) -> list[Peer]:
        return list(self.running.values())


def status(version: str, installed: Installed, started: float) -> dict[str, Any]:
    return {
        "version": version,
        "install_seconds": installed.seconds,  # 0: the cached environment was used
        "install_mib": installed.size_mib,
        "start_seconds": round(started, 1),
    }


def _start_litellm(upstream: Server) -> tuple[Peer, dict[str, Any]]:
    installed = litellm.install()
    began = time.monotonic()
    server = litellm.start_litellm(installed, upstream)
    started = time.monotonic() - began
    peer = Peer(
        LITELLM,
        server,
        "/v1/chat/completions",
        {"Authorization": f"Bearer {litellm.MASTER_KEY}"},
        litellm.MODEL,
        "assistant",
    )
    return peer, status(litellm.VERSION, installed, started)


def _start_open_webui(upstream: Server) -> tuple[Peer, dict[str, Any]]:
    installed = open_webui.install()
    began = time.monotonic()
    server = open_webui.start_open_webui(installed, upstream)
    try:
        token = open_webui.sign_in(server)
    except BaseException:
        server.stop()
        raise
    started = time.monotonic() - began
    peer = Peer(
        OPEN_WEBUI,
        server,
        "/api/chat/completions",
        {"Authorization": f"Bearer {token}"},
        open_webui.MODEL,
        "stack",
    )
    return peer, status(open_webui.VERSION, installed, started)


@contextlib.contextmanager
def running_peers(upstream: Server, wanted: bool) -> Iterator[Peers]:
    """Every peer that can run here, on `upstream`; none unless `wanted`."""
    peers = Peers()
    try:
        if wanted:
            for name, begin in ((LITELLM, _start_litellm), (OPEN_WEBUI, _start_open_webui)):
                try:
                    peer, status = begin(upstream)
                except PeerUnavailable as exc:
                    peers.status[name] = {"unavailable": str(exc)}
                    continue
                status["idle_rss_mib"] = round(peer.rss_bytes() / 2**20, 1)
                peers.running[name], peers.status[name] = peer, status
        yield peers
    finally:
        for peer in peers.all():
            peer.server.stop()
