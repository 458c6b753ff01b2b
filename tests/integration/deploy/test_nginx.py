"""The rendered nginx config, through the real nginx, in front of small real upstream apps."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import re
import select
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.support.nginx import (
    config_test,
    make_prefix,
    nginx_exe,
    render_module,
    start_nginx,
    write_config,
)
from tests.support.servers import (
    PYTHON,
    ROOT,
    Server,
    free_port,
    http_ok,
    start,
    wait_until,
)
from tests.support.sse import Event, iter_events

SECURITY = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
}
TUTORIAL_PATHS = ["/token", "/refresh_token", "/chat/", "/test"]


def assert_security_headers(response: httpx.Response) -> None:
    for name, value in SECURITY.items():
        assert response.headers.get(name) == value, (name, dict(response.headers))
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", response.headers["x-request-id"])


# --- the config itself -------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"access_log": True, "max_body_size": "8m", "rate_limit": "300r/m", "rate_burst": 5},
        {"user": "root", "worker_processes": "2", "stream_timeout": "10m"},
        {
            "access_log": "/tmp/nginx-access.log",
            "conn_limit": 65535,
            "ws_idle_timeout": "90s",
            "client_header_timeout": "500ms",
            "client_body_timeout": "5s",
            "send_timeout": "1m",
            "keepalive_timeout": "0",
            "trusted_proxies": "10.0.0.0/8, 192.168.1.10 fd00::/8",
        },
    ],
    ids=["defaults", "tuned", "as-root", "guarded"],
)
def test_rendered_config_passes_nginx_t(options: dict[str, object], static_root: Path) -> None:
    prefix = make_prefix()
    upstreams = ["127.0.0.1:8000", "127.0.0.1:8002"]
    conf = write_config(prefix, free_port(), upstreams, static_root, **options)
    result = config_test(conf)
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr


def test_render_rejects_values_that_would_break_the_config(static_root: Path) -> None:
    render = render_module().render
    bad: list[dict[str, Any]] = [
        {"rate_limit": "fast"},
        {"max_body_size": "1m; include /etc/passwd"},
        {"stream_timeout": "forever"},
        {"rate_burst": "-1"},
        {"conn_limit": "0"},
        {"conn_limit": 65536},
        {"ws_idle_timeout": "1 h"},
        {"client_header_timeout": "10s; deny all"},
        {"keepalive_timeout": ""},
        {"access_log": "relative/access.log"},
        {"trusted_proxies": "10.0.0.0/8; deny all"},
        {"trusted_proxies": "proxy.example"},
        {"access_log": "/tmp/a.log main; access_log /etc/passwd"},
    ]
    for options in bad:
        with pytest.raises(ValueError):
            render("8080", str(static_root), ["127.0.0.1:8000"], "/tmp", **options)
    with pytest.raises(ValueError):
        render("8080", str(static_root), [], "/tmp")


def test_only_conversation_is_an_upstream(static_root: Path) -> None:
    conf = render_module().render("8080", str(static_root), ["10.1.2.3:8000"], "/tmp")
    upstreams = re.findall(r"^\s*server ([^\s{]+)", conf, re.MULTILINE)
    assert upstreams == ["10.1.2.3:8000"]
    assert set(re.findall(r"proxy_pass (\S+);", conf)) == {"http://conversation"}
    assert "proxy_http_version 1.1;" in conf


# --- streaming ---------------------------------------------------------------------------


def test_sse_events_arrive_one_by_one(single_site: Server, replicas: list[Server]) -> None:
    """Each event must reach the client before the app produces the next one (see the app's
    gate): buffering anywhere in nginx makes the client's read time out instead."""
    run = uuid.uuid4().hex
    app = replicas[0].url
    received: list[str] = []
    timeout = httpx.Timeout(10, read=8)
    with (
        httpx.Client(timeout=timeout) as client,
        client.stream(
            "GET",
            f"{single_site.url}/api/stream/{run}?count=5",
            headers={"Accept-Encoding": "gzip"},
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert "content-encoding" not in response.headers  # gzip would hold events back
        for event in iter_events(response.iter_lines()):
            received.append(f"{event.event}:{event.data}")
            if event.event == "tick":
                client.post(f"{app}/api/release/{run}/{event.data}").raise_for_status()
    assert received == [f"tick:{i}" for i in range(5)] + ["done:end"]


def test_sse_through_nginx_without_buffering_off_would_fail(
    replicas: list[Server], static_root: Path
) -> None:
    """The streaming test above is able to fail: with nginx's proxy defaults (buffering on) and
    event streams compressed, the first event is held back while the app waits for it to be
    received, and the client's read times out."""
    prefix = make_prefix()
    port = free_port()
    conf = write_config(prefix, port, [f"127.0.0.1:{replicas[0].port}"], static_root)
    broken = "proxy_buffering on; gzip_types text/event-stream;"
    conf.write_text(conf.read_text().replace("proxy_buffering off;", broken))
    cmd = [nginx_exe(), "-p", str(prefix), "-c", str(conf), "-e", "stderr"]
    buffered = start("nginx-buffered", cmd, port, http_ok(f"http://127.0.0.1:{port}/healthz"))
    try:
        run = uuid.uuid4().hex
        # The read times out on the headers or on the first event, depending on where
        # nginx holds the response back.
        with (
            pytest.raises(httpx.ReadTimeout),
            httpx.Client(timeout=httpx.Timeout(10, read=2)) as client,
            client.stream("GET", f"{buffered.url}/api/stream/{run}?count=2") as response,
        ):
            next(iter_events(response.iter_lines()))
        # Let the app finish the stream it is holding.
        for i in range(2):
            httpx.post(f"{replicas[0].url}/api/release/{run}/{i}").raise_for_status()
    finally:
        buffered.stop()


@pytest.mark.parametrize("path", ["/api/sessions/s1/ws", "/chat"])
def test_websocket_through_nginx(site: Server, path: str) -> None:
    with connect(f"ws://127.0.0.1:{site.port}{path}", open_timeout=10) as ws:
        for text in ["hello", "second message"]:
            ws.send(text)
            reply = ws.recv(timeout=10)
            assert isinstance(reply, str)
            assert reply.endswith(f":{text}") and reply.startswith("replica-")


# --- limits ------------------------------------------------------------------------------


def test_body_limit_answers_json_413(site: Server) -> None:
    accepted = httpx.post(f"{site.url}/api/echo", content=b"x" * 512 * 1024, timeout=30)
    assert accepted.status_code == 200 and accepted.json()["size"] == 512 * 1024

    rejected = httpx.post(f"{site.url}/api/echo", content=b"x" * 2 * 1024 * 1024, timeout=30)
    assert rejected.status_code == 413
    assert rejected.headers["content-type"] == "application/json"
    assert rejected.json()["code"] == "payload_too_large"
    assert "1m" in rejected.json()["detail"]
    assert_security_headers(rejected)


def test_imports_have_a_body_limit_of_their_own(site: Server) -> None:
    body = b"x" * 2 * 1024 * 1024  # over the API's 1m, under the import's 8m
    accepted = httpx.post(f"{site.url}/api/import", content=body, timeout=30)
    assert accepted.status_code == 200 and accepted.json()["size"] == len(body)
    assert httpx.post(f"{site.url}/api/echo", content=body, timeout=30).status_code == 413

    rejected = httpx.post(f"{site.url}/api/import", content=b"x" * 9 * 1024 * 1024, timeout=60)
    assert rejected.status_code == 413
    assert rejected.json()["code"] == "payload_too_large" and "8m" in rejected.json()["detail"]


def test_small_body_limit_from_settings(strict_site: Server) -> None:
    rejected = httpx.post(f"{strict_site.url}/api/echo", content=b"x" * 17 * 1024, timeout=30)
    assert rejected.status_code == 413
    assert rejected.json()["code"] == "payload_too_large"


def test_burst_answers_json_429(strict_site: Server) -> None:
    # 1 request a minute plus a burst of 2: within one minute the 4th request is refused.
    statuses: list[int] = []
    refused: httpx.Response | None = None
    with httpx.Client(base_url=strict_site.url, timeout=10) as client:
        for _ in range(10):
            response = client.get("/test")
            statuses.append(response.status_code)
            if response.status_code == 429:
                refused = response
                break
    assert statuses[0] == 200
    assert refused is not None, statuses
    assert refused.headers["content-type"] == "application/json"
    assert refused.json()["code"] == "rate_limited"
    assert refused.headers["retry-after"] == "1"
    assert_security_headers(refused)
    # Static files are not rate limited.
    assert httpx.get(f"{strict_site.url}/favicon.svg").status_code == 200


def test_refusals_are_not_repeated_in_the_error_log(strict_site: Server) -> None:
    # The access log has one line per request, 429s included; a client hammering the API must
    # not also get an error-log line per refused request (scenario 5 of bench/).
    with httpx.Client(base_url=strict_site.url, timeout=10) as client:
        statuses = [client.get("/test").status_code for _ in range(5)]
    assert 429 in statuses, statuses
    assert "limiting requests" not in strict_site.log()


def test_upstream_down_answers_json_503(static_root: Path) -> None:
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    server = start_nginx([dead], static_root)
    try:
        response = httpx.get(f"{server.url}/api/sessions", timeout=10)
        assert response.status_code == 503
        assert response.json()["code"] == "service_unavailable"
    finally:
        server.stop()


# --- routing -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/sessions", *TUTORIAL_PATHS])
def test_api_and_tutorial_paths_reach_conversation(site: Server, path: str) -> None:
    response = httpx.post(f"{site.url}{path}", json={"x": 1})
    assert response.status_code == 200
    assert response.json()["path"] == path


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/v1/models"),
        ("POST", "/v1/chat/completions"),
        ("GET", "/health/ready"),
        ("GET", "/health/live"),
        ("GET", "/tokenizer"),
        ("GET", "/testing"),
    ],
)
def test_other_paths_never_reach_an_upstream(site: Server, method: str, path: str) -> None:
    """Assistant's paths (and look-alikes of proxied ones) are answered by nginx itself."""
    response = httpx.request(method, f"{site.url}{path}", json={})
    assert "replica" not in response.text
    if method == "GET":
        assert response.status_code == 200 and '<div id="root">' in response.text
    else:
        assert response.status_code == 405


def test_requests_spread_over_replicas(site: Server, replicas: list[Server]) -> None:
    with httpx.Client(base_url=site.url) as client:
        served = {client.get("/api/whoami").json()["replica"] for _ in range(12)}
    assert served == {r.name for r in replicas}


# --- headers -----------------------------------------------------------------------------


def test_request_id_is_generated_and_passed_on(site: Server) -> None:
    response = httpx.get(f"{site.url}/api/whoami")
    generated = response.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert response.json()["headers"]["x-request-id"] == generated
    assert response.json()["headers"]["x-forwarded-for"] == "127.0.0.1"


def test_request_id_from_the_client_is_kept_when_sane(site: Server) -> None:
    kept = httpx.get(f"{site.url}/api/whoami", headers={"X-Request-ID": "abc-123.x:y_z"})
    assert kept.headers["x-request-id"] == "abc-123.x:y_z"
    assert kept.json()["headers"]["x-request-id"] == "abc-123.x:y_z"

    forged = httpx.get(f"{site.url}/api/whoami", headers={"X-Request-ID": 'a b" {x}'})
    assert re.fullmatch(r"[0-9a-f]{32}", forged.headers["x-request-id"])
    assert forged.json()["headers"]["x-request-id"] == forged.headers["x-request-id"]


def test_upstream_identity_headers_are_hidden(site: Server) -> None:
    response = httpx.get(f"{site.url}/api/whoami")
    assert response.headers.get("server") == "nginx"  # no version
    assert "x-powered-by" not in response.headers


@pytest.mark.parametrize("path", ["/", "/index.html", "/chats/42", "/favicon.svg", "/api/whoami"])
def test_security_headers_everywhere(site: Server, path: str) -> None:
    assert_security_headers(httpx.get(f"{site.url}{path}"))


def test_cache_rules(site: Server) -> None:
    for path in ["/", "/index.html", "/some/client/route"]:
        page = httpx.get(f"{site.url}{path}")
        assert page.status_code == 200 and '<div id="root">' in page.text
        assert page.headers["cache-control"] == "no-cache", path

    asset = httpx.get(f"{site.url}/assets/app-1a2b3c4d.js")
    assert asset.status_code == 200
    assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert_security_headers(asset)

    missing = httpx.get(f"{site.url}/assets/app-00000000.js")
    assert missing.status_code == 404  # never the page in place of a script


def test_gzip_for_text_assets(site: Server) -> None:
    with httpx.Client() as client:
        response = client.get(
            f"{site.url}/assets/app-1a2b3c4d.js", headers={"Accept-Encoding": "gzip"}
        )
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["vary"] == "Accept-Encoding"
    assert response.text.startswith("export const greeting")  # httpx decoded it


def test_dotfiles_are_not_served(site: Server, static_root: Path) -> None:
    (static_root / ".env").write_text("SECRET=1\n")
    (static_root / ".env").chmod(0o644)
    assert httpx.get(f"{site.url}/.env").status_code == 404


# --- as a normal user --------------------------------------------------------------------


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="already a normal user: every other test here runs nginx that way",
)
def test_nginx_runs_as_a_normal_user(replicas: list[Server], static_root: Path) -> None:
    """Under root the tests run nginx with workers as nobody; this runs the whole nginx as
    nobody, as a user without root would: no `user` directive, everything under the prefix."""
    nobody = pwd.getpwnam("nobody")
    prefix = make_prefix()
    port = free_port()
    conf = write_config(prefix, port, [f"127.0.0.1:{replicas[0].port}"], static_root, user=None)
    assert "\nuser " not in conf.read_text()
    os.chown(prefix, nobody.pw_uid, nobody.pw_gid)
    drop = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups"]
    cmd = [*drop, nginx_exe(), "-p", str(prefix), "-c", str(conf), "-e", "stderr"]
    server = start("nginx-nobody", cmd, port, http_ok(f"http://127.0.0.1:{port}/healthz"))
    try:
        assert httpx.get(f"{server.url}/").status_code == 200
        assert httpx.get(f"{server.url}/api/whoami").json()["replica"] == "replica-1"
        big = httpx.post(f"{server.url}/api/echo", content=b"x" * 300_000)  # temp file
        assert big.json()["size"] == 300_000
        owner = (prefix / "nginx.pid").stat().st_uid
        assert owner == nobody.pw_uid
    finally:
        server.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="only a root master can choose its workers' user")
def test_root_serves_a_checkout_that_nobody_cannot_read(replicas: list[Server]) -> None:
    """A new user cloning into /root (mode 700) and running ./stack up as root: workers as
    nobody could not read the UI, so the renderer picks root for them."""
    home = Path(tempfile.mkdtemp(prefix="home-"))  # mkdtemp makes it 0700, like /root
    dist = home / "checkout" / "dist"
    dist.mkdir(parents=True)
    (dist / "index.html").write_text("<p>private checkout</p>\n")
    assert render_module().workers_user(str(dist), str(make_prefix())) == "root"
    server = start_nginx([f"127.0.0.1:{replicas[0].port}"], dist)
    try:
        assert "private checkout" in httpx.get(f"{server.url}/").text
    finally:
        server.stop()


# --- credentials never reach a log --------------------------------------------------------


def first_replica(replicas: list[Server]) -> list[str]:
    return [f"127.0.0.1:{replicas[0].port}"]


SECRET_ARGUMENTS = ["token", "access_token", "api_key", "key", "password"]


def secrets_for(names: list[str]) -> dict[str, str]:
    return {name: f"secret-{name}-{uuid.uuid4().hex}" for name in names}


def access_entries(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_credentials_in_queries_are_redacted_from_the_access_log(
    replicas: list[Server], static_root: Path
) -> None:
    log = Path(tempfile.mkdtemp(prefix="nginx-log-")) / "access.log"
    server = start_nginx(first_replica(replicas), static_root, access_log=str(log))
    names = [*SECRET_ARGUMENTS, "client_secret", "%74oken"]
    secrets = secrets_for(names)
    headers = {"Authorization": f"Bearer {secrets['token']}", "Cookie": f"sid={secrets['key']}"}
    # As many credential-like arguments in one query as nginx redacts one by one.
    per_query = render_module().REDACTION_PASSES
    groups = [names[i : i + per_query] for i in range(0, len(names), per_query)]
    try:
        with httpx.Client(base_url=server.url, headers=headers, timeout=10) as client:
            assert client.get("/refresh_token", params={"token": secrets["token"]}).is_success
            for group in groups:
                query = "&".join(f"{name}={secrets[name]}" for name in group)
                assert client.get(f"/api/whoami?page=2&{query}&q=hello").is_success
            assert client.get(f"/?token={secrets['token']}").status_code == 200
        ws_url = f"ws://127.0.0.1:{server.port}/api/sessions/s1/ws?token={secrets['token']}"
        with connect(ws_url, open_timeout=10) as ws:
            ws.send("hello")
            ws.recv(timeout=10)
        # A socket's line is written when it closes.
        lines = len(groups) + 3
        wait_until(lambda: len(access_entries(log)) == lines, 10, "every access log line")
    finally:
        server.stop()
    text = log.read_text()
    for value in secrets.values():
        assert value not in text
    uris = [entry["uri"] for entry in access_entries(log)]
    assert uris == [
        "/refresh_token?token=[redacted]",
        *[
            "/api/whoami?page=2&" + "&".join(f"{name}=[redacted]" for name in group) + "&q=hello"
            for group in groups
        ],
        "/?token=[redacted]",
        "/api/sessions/s1/ws?token=[redacted]",
    ]


def test_a_query_with_many_credentials_is_redacted_whole(
    replicas: list[Server], static_root: Path
) -> None:
    names = [f"key{i}" for i in range(render_module().REDACTION_PASSES + 1)]
    log = Path(tempfile.mkdtemp(prefix="nginx-log-")) / "access.log"
    server = start_nginx(first_replica(replicas), static_root, access_log=str(log))
    secrets = secrets_for(names)
    try:
        query = "&".join(f"{name}={value}" for name, value in secrets.items())
        httpx.get(f"{server.url}/?{query}", timeout=10).raise_for_status()
        wait_until(lambda: log.stat().st_size > 0, 10, "the access log line")
    finally:
        server.stop()
    assert [entry["uri"] for entry in access_entries(log)] == ["/?[redacted]"]


def test_failed_requests_with_credentials_leave_none_in_the_error_log(static_root: Path) -> None:
    """nginx writes the request line into each error it logs about a request (here: the
    replica refuses connections), so a token in the query would land in the error log."""
    log = Path(tempfile.mkdtemp(prefix="nginx-log-")) / "access.log"
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    server = start_nginx([dead], static_root, access_log=str(log))
    secrets = secrets_for(SECRET_ARGUMENTS)
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for name, value in secrets.items():
                response = client.get(
                    f"/api/sessions/s1/ws?{name}={value}",
                    headers={"Authorization": f"Bearer {value}", "Cookie": f"sid={value}"},
                )
                assert response.status_code == 503
            too_big = client.post(f"/refresh_token?token={secrets['token']}", content=b"x" * 2**21)
            assert too_big.status_code == 413
        wait_until(lambda: len(access_entries(log)) == 6, 10, "the access log's six lines")
    finally:
        server.stop()
    everything = server.log() + log.read_text()
    for value in secrets.values():
        assert value not in everything
    failed = access_entries(log)[0]
    assert failed["uri"] == "/api/sessions/s1/ws?token=[redacted]"
    assert failed["upstream"] == dead and failed["upstream_status"] == "502"


# --- nginx sets the proxy headers ---------------------------------------------------------


def test_forwarded_headers_from_the_client_are_replaced(site: Server) -> None:
    forged = {
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-For": "203.0.113.9",
        "X-Forwarded-Proto": "https",
        "X-Real-IP": "203.0.113.9",
        "Forwarded": "for=203.0.113.9;host=evil.example;proto=https",
    }
    seen = httpx.get(f"{site.url}/api/whoami", headers=forged).json()["headers"]
    assert seen["x-forwarded-host"] == f"127.0.0.1:{site.port}"
    assert seen["host"] == "127.0.0.1"
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert seen["x-real-ip"] == "127.0.0.1"
    assert seen["x-forwarded-proto"] == "http"
    assert "forwarded" not in seen


def test_a_trusted_proxy_names_the_client(replicas: list[Server], static_root: Path) -> None:
    """Behind a load balancer (here: the test itself, from 127.0.0.1) each client is the
    address the balancer appended to X-Forwarded-For, for conversation and for the limits."""
    server = start_nginx(
        first_replica(replicas),
        static_root,
        trusted_proxies="127.0.0.1",
        conn_limit=1,
        rate_limit="1000r/s",
        rate_burst=1000,
    )
    # What a client wrote into the header itself comes first, and is not taken.
    alice = {"X-Forwarded-For": "198.51.100.7, 203.0.113.9"}
    bob = {"X-Forwarded-For": "203.0.113.10"}
    run = uuid.uuid4().hex
    try:
        with ExitStack() as stack:
            client = stack.enter_context(httpx.Client(base_url=server.url, timeout=10))
            seen = client.get("/api/whoami", headers=alice).json()["headers"]
            assert seen["x-forwarded-for"] == seen["x-real-ip"] == "203.0.113.9"
            stream = stack.enter_context(
                client.stream("GET", f"/api/stream/{run}?count=1", headers=alice)
            )
            assert stream.status_code == 200
            events = iter_events(stream.iter_lines())
            assert next(events).event == "tick"
            # Alice's one connection is taken; Bob, behind the same balancer, has his own.
            assert client.get("/api/whoami", headers=alice).status_code == 429
            assert client.get("/api/whoami", headers=bob).status_code == 200
            httpx.post(f"{replicas[0].url}/api/release/{run}/0").raise_for_status()
            assert next(events).event == "done"
    finally:
        server.stop()


def test_content_security_policy_of_the_ui(site: Server) -> None:
    for path in ["/", "/assets/app-1a2b3c4d.js"]:
        header = httpx.get(f"{site.url}{path}").headers["content-security-policy"]
        policy = {d.partition(" ")[0]: d.partition(" ")[2] for d in header.split("; ")}
        assert policy["script-src"] == "'self'"
        assert policy["object-src"] == "'none'"
        assert policy["base-uri"] == "'none'"
        assert policy["frame-ancestors"] == "'none'"
        assert policy["default-src"] == "'self'"
        assert "unsafe" not in header


# --- abuse: slow clients, oversized requests, too many connections ----------------------

# The pace of a slowloris client: one byte per TRICKLE seconds, far slower than the site's
# one-second timeouts allow for a whole header.
TRICKLE = 0.25
SHORT = "1s"


@pytest.fixture(scope="module")
def guarded_site(replicas: list[Server], static_root: Path) -> Iterator[Server]:
    """nginx with one-second client and WebSocket timeouts and 3 API requests per address."""
    server = start_nginx(
        first_replica(replicas),
        static_root,
        client_header_timeout=SHORT,
        client_body_timeout=SHORT,
        ws_idle_timeout=SHORT,
        conn_limit=3,
        rate_limit="1000r/s",
        rate_burst=1000,
    )
    yield server
    server.stop()


def closed_by_peer(sock: socket.socket, timeout: float) -> bool:
    """Whether the server closes `sock` within `timeout` (anything it sends first is read)."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([sock], [], [], left)
        if not readable:
            return False
        try:
            if sock.recv(65536) == b"":
                return True
        except ConnectionResetError:
            return True
    return False


def test_a_header_trickled_byte_by_byte_is_cut(guarded_site: Server) -> None:
    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 400 + b"\r\n\r\n"
    with socket.create_connection(("127.0.0.1", guarded_site.port), timeout=10) as sock:
        sock.sendall(request)  # the same request at once is answered
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
    with socket.create_connection(("127.0.0.1", guarded_site.port), timeout=10) as sock:
        sent, closed = 0, False
        while sent < len(request) and not closed:
            try:
                sock.sendall(request[sent : sent + 1])
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 1
            closed = closed_by_peer(sock, TRICKLE)
        # Cut long before the ~100 s the whole header would take at this pace.
        assert sent < len(request) // 4, sent


def test_a_stalled_body_is_cut(guarded_site: Server) -> None:
    head = b"POST /api/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n"
    with socket.create_connection(("127.0.0.1", guarded_site.port), timeout=10) as sock:
        sock.sendall(head + b"x" * 10)  # then nothing more
        assert closed_by_peer(sock, 15)


def test_oversized_request_line_and_headers_answer_json(site: Server) -> None:
    with httpx.Client(base_url=site.url, timeout=10) as client:
        long_uri = client.get("/api/whoami?q=" + "a" * 9000)
        one_big_header = client.get("/api/whoami", headers={"X-Big": "a" * 9000})
        too_many = client.get("/", headers={f"X-Part-{i}": "a" * 7000 for i in range(6)})
        fine = client.get("/api/whoami", headers={"X-Medium": "a" * 7000})
    assert fine.status_code == 200
    assert long_uri.status_code == 414 and long_uri.json()["code"] == "uri_too_long"
    for response in (one_big_header, too_many):
        assert response.status_code == 431 and response.json()["code"] == "headers_too_large"
    for response in (long_uri, one_big_header, too_many):
        assert response.headers["content-type"] == "application/json"
        assert "replica" not in response.text
        assert_security_headers(response)


def test_a_garbled_request_answers_json_400(site: Server) -> None:
    with socket.create_connection(("127.0.0.1", site.port), timeout=10) as sock:
        sock.sendall(b"GET /\x01 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = b""
        while not answer.endswith(b"}\n") and (chunk := sock.recv(65536)):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"content-type: application/json" in head.lower()
    assert json.loads(body)["code"] == "bad_request"


def open_held_stream(
    stack: ExitStack, client: httpx.Client, run: str
) -> tuple[httpx.Response, Iterator[Event]]:
    """A gated SSE stream that stays open (its first event received) until released, with its
    reader: the caller keeps both, as a reader dropped half-way closes its connection."""
    response = stack.enter_context(client.stream("GET", f"/api/stream/{run}?count=1"))
    events = iter_events(response.iter_lines())
    if response.status_code == 200:
        assert next(events).event == "tick"
    else:
        response.read()
    return response, events


def test_connections_per_address_are_limited(guarded_site: Server, replicas: list[Server]) -> None:
    runs = [uuid.uuid4().hex for _ in range(4)]
    with ExitStack() as stack:
        client = stack.enter_context(httpx.Client(base_url=guarded_site.url, timeout=10))
        held = [open_held_stream(stack, client, run) for run in runs]
        assert [r.status_code for r, _ in held] == [200, 200, 200, 429]
        over, _ = held[3]
        assert over.json()["code"] == "rate_limited"
        assert over.headers["retry-after"] == "1"
        refused = client.get("/api/whoami")
        assert refused.status_code == 429
        assert_security_headers(refused)
        # Static files are not counted.
        assert client.get("/").status_code == 200
        assert client.get("/assets/app-1a2b3c4d.js").status_code == 200
        for run in runs[:3]:
            httpx.post(f"{replicas[0].url}/api/release/{run}/0").raise_for_status()
    wait_until(
        lambda: httpx.get(f"{guarded_site.url}/api/whoami").status_code == 200,
        10,
        "the API answering once the streams ended",
    )


def test_an_idle_websocket_is_closed_and_streams_are_not(
    guarded_site: Server, replicas: list[Server]
) -> None:
    run = uuid.uuid4().hex
    with (
        httpx.Client(base_url=guarded_site.url, timeout=httpx.Timeout(10, read=15)) as client,
        client.stream("GET", f"/api/stream/{run}?count=1") as stream,
    ):
        events = iter_events(stream.iter_lines())
        assert next(events).event == "tick"
        with connect(f"ws://127.0.0.1:{guarded_site.port}/api/sessions/s1/ws") as ws:
            ws.send("hello")
            assert ws.recv(timeout=10) == "replica-1:hello"
            # Silent in both directions from here: nginx closes it after its 1 s.
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=15)
        # The SSE stream has been silent as long and is still open.
        httpx.post(f"{replicas[0].url}/api/release/{run}/0").raise_for_status()
        assert next(events).event == "done"


async def test_static_files_answer_while_the_api_is_flooded(
    replicas: list[Server], static_root: Path
) -> None:
    """One address opens far more API streams than limit_conn lets through and fires far more
    API requests than limit_req does; every page and asset request meanwhile gets its 200."""
    server = start_nginx(
        first_replica(replicas), static_root, conn_limit=8, rate_limit="10r/s", rate_burst=10
    )
    upstream = replicas[0].url
    runs = [uuid.uuid4().hex for _ in range(40)]
    held: dict[str, asyncio.Event] = {run: asyncio.Event() for run in runs}
    stream_status: dict[str, int] = {}
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    try:
        async with httpx.AsyncClient(
            base_url=server.url, limits=limits, timeout=httpx.Timeout(30)
        ) as client:

            async def hold(run: str) -> None:
                async with client.stream("GET", f"/api/stream/{run}?count=1") as response:
                    stream_status[run] = response.status_code
                    held[run].set()
                    await response.aread()  # the gated stream ends when released

            async def flood_until(done: asyncio.Event) -> list[int]:
                statuses = []
                while not done.is_set():
                    statuses.append((await client.get("/api/whoami")).status_code)
                return statuses

            async def static(done: asyncio.Event) -> list[int]:
                statuses = []
                try:
                    for _ in range(5):
                        for path in ["/", "/assets/app-1a2b3c4d.js", "/favicon.svg"]:
                            statuses.append((await client.get(path)).status_code)
                finally:
                    done.set()
                return statuses

            holders = [asyncio.create_task(hold(run)) for run in runs]
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in held.values())), 30)
            # The page and asset requests go out while 20 clients keep hammering the API.
            done = asyncio.Event()
            pages, *flooders = await asyncio.gather(
                static(done), *(flood_until(done) for _ in range(20))
            )
            flood = [status for statuses in flooders for status in statuses]
            open_streams = [run for run, status in stream_status.items() if status == 200]
            async with httpx.AsyncClient(base_url=upstream) as direct:
                for run in open_streams:
                    (await direct.post(f"/api/release/{run}/0")).raise_for_status()
            await asyncio.wait_for(asyncio.gather(*holders), 30)
    finally:
        server.stop()
    assert pages == [200] * 15
    assert set(stream_status.values()) == {200, 429}
    assert 0 < len(open_streams) <= 8
    assert 429 in flood and set(flood) <= {200, 429}, flood


# --- settings ------------------------------------------------------------------------------


def test_every_setting_is_documented_in_env_example_with_its_default() -> None:
    example = (ROOT / ".env.example").read_text()
    documented = dict(re.findall(r"^(NGINX_[A-Z_]+)=(.*)$", example, re.MULTILINE))
    assert documented == render_module().DEFAULTS


def test_the_command_line_reads_settings_from_the_environment(tmp_path: Path) -> None:
    env = {**os.environ, "NGINX_CONN_LIMIT": "7", "NGINX_WS_IDLE_TIMEOUT": "45s"}
    cmd = [PYTHON, str(ROOT / "nginx" / "render.py"), "--user", "none", "--prefix", str(tmp_path)]
    conf = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    assert "limit_conn api_conn 7;" in conf
    assert "proxy_read_timeout 45s;" in conf
    overridden = subprocess.run(
        [*cmd, "--conn-limit", "9"], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert "limit_conn api_conn 9;" in overridden
