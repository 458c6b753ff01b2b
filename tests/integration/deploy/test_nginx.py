"""The rendered nginx config, through the real nginx, in front of small real upstream apps."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import tempfile
import uuid
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from tests.support.nginx import (
    config_test,
    make_prefix,
    nginx_exe,
    render_module,
    start_nginx,
    write_config,
)
from tests.support.servers import Server, free_port, http_ok, start
from tests.support.sse import iter_events

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
    bad = [
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
