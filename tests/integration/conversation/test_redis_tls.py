"""Conversation against a Redis that speaks only TLS, as managed Redis services do: a
`rediss://` REDIS_URL with the CA to trust (`?ssl_ca_certs=`) works for every flow, and a
replica that does not trust the server's certificate is not ready and says so without
naming the address (nothing is stored in plain text on the way)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from tests.support.conversation import (
    create_session,
    get_session,
    send,
    start_assistant_for,
    start_replica,
    text_of,
)
from tests.support.servers import Server, free_port, start, start_fake_upstream, tcp_open


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(folder: Path, name: str) -> None:
    openssl(
        *("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
        *("-keyout", f"{name}.key", "-out", f"{name}.pem", "-subj", f"/CN={name}"),
        cwd=folder,
    )


def make_certificates(folder: Path) -> None:
    """A CA, a server certificate it signed for 127.0.0.1, and a second CA that signed nothing."""
    make_ca(folder, "ca")
    make_ca(folder, "other-ca")
    openssl(
        *("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key"),
        *("-out", "server.csr", "-subj", "/CN=127.0.0.1"),
        cwd=folder,
    )
    (folder / "san").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl(
        *("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key"),
        *("-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san"),
        cwd=folder,
    )


def start_tls_redis(folder: Path) -> Server:
    exe = shutil.which("redis-server")
    assert exe, "redis-server is installed by ./stack test"
    port = free_port()
    cmd = [
        *(exe, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1"),
        *("--tls-cert-file", str(folder / "server.pem")),
        *("--tls-key-file", str(folder / "server.key")),
        *("--tls-ca-cert-file", str(folder / "ca.pem")),
        *("--tls-auth-clients", "no", "--save", "", "--dir", str(folder)),
    ]
    return start("redis-tls", cmd, port, tcp_open(port))


@dataclass
class TlsStack:
    server: Server
    admin: redis.Redis
    trusting: Server
    distrusting: Server


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsStack]:
    folder = tmp_path_factory.mktemp("tls")
    make_certificates(folder)
    server = start_tls_redis(folder)
    started: list[Server] = []
    try:
        upstream = start_fake_upstream()
        started.append(upstream)
        assistant = start_assistant_for(upstream)
        started.append(assistant)

        def url(ca: str) -> str:
            return f"rediss://127.0.0.1:{server.port}/0?ssl_ca_certs={folder / ca}"

        started.append(start_replica(server, assistant.url, REDIS_URL=url("ca.pem")))
        started.append(start_replica(server, assistant.url, REDIS_URL=url("other-ca.pem")))
        admin = redis.Redis.from_url(url("ca.pem"), decode_responses=True)
        yield TlsStack(server, admin, started[-2], started[-1])
    finally:
        for s in reversed(started):
            s.stop()
        server.stop()


def test_every_flow_works_over_tls(tls: TlsStack) -> None:
    assert httpx.get(f"{tls.trusting.url}/api/health/ready").status_code == 200
    session = create_session(tls.trusting, name="over tls")
    events = send(session, "hello")
    assert events[-1].event == "done" and text_of(events)
    history = get_session(session)["messages"]
    assert [m["role"] for m in history] == ["user", "assistant"]
    assert history[0]["content"] == "hello"

    keys = list(tls.admin.scan_iter(count=1000))
    assert keys and [k for k in keys if tls.admin.ttl(k) == -1] == []
    assert httpx.delete(session.url(), headers=session.auth).status_code == 204


def test_a_replica_that_does_not_trust_the_certificate_is_not_ready(tls: TlsStack) -> None:
    ready = httpx.get(f"{tls.distrusting.url}/api/health/ready")
    assert ready.status_code == 503
    assert "127.0.0.1" not in ready.text and str(tls.server.port) not in ready.text

    created = httpx.post(f"{tls.distrusting.url}/api/sessions", json={"name": "x"}, timeout=30)
    assert created.status_code == 503, created.text
    body = created.json()
    assert body["code"] == "unavailable" and body["detail"]
    assert str(tls.server.port) not in created.text
