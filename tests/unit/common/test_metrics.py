"""`Observe`: requests by route template and status, errors by code, `GET /metrics`, and the
request id, on a small FastAPI app served in process; multiprocess mode in real processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.responses import JSONResponse, StreamingResponse
from prometheus_client.parser import text_string_to_metric_families

from common.logs import request_id
from common.metrics import Observe, ServiceMetrics, error_code
from tests.support.servers import ROOT


def sample(text: str, name: str, **labels: str) -> float:
    """The value of the sample `name` with exactly these labels (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return 0.0


def make_app() -> tuple[FastAPI, ServiceMetrics]:
    app = FastAPI()
    metrics = ServiceMetrics()

    @app.get("/items/{item_id}")
    async def item(item_id: str) -> dict[str, str | None]:
        return {"id": item_id, "request_id": request_id.get()}

    @app.get("/missing/{item_id}")
    async def missing(item_id: str) -> JSONResponse:
        return JSONResponse({"detail": "no such item", "code": "not_found"}, status_code=404)

    @app.get("/openai-error")
    async def openai_error() -> JSONResponse:
        body = {"error": {"message": "slow", "type": "timeout", "code": "upstream_timeout"}}
        return JSONResponse(body, status_code=504)

    @app.get("/conflict")
    async def conflict() -> None:
        raise HTTPException(409, "busy")

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def parts() -> object:
            for i in range(3):
                yield f"part {i}\n".encode()

        return StreamingResponse(parts(), media_type="text/plain")  # type: ignore[arg-type]

    app.add_middleware(Observe, metrics=metrics)
    return app, metrics


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def scrape(http: httpx.AsyncClient) -> str:
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def test_requests_are_counted_by_route_template_never_by_raw_path() -> None:
    app, _ = make_app()
    async with client(app) as http:
        for item in ("a", "b", "c"):
            assert (await http.get(f"/items/{item}")).status_code == 200
        text = await scrape(http)
    labels = {"method": "GET", "route": "/items/{item_id}", "status": "200"}
    assert sample(text, "chatstack_http_requests_total", **labels) == 3
    assert "/items/a" not in text


async def test_unknown_paths_share_one_label_and_odd_methods_are_other() -> None:
    app, _ = make_app()
    async with client(app) as http:
        for path in ("/nope", "/x/y/z", "/items"):
            assert (await http.get(path)).status_code == 404
        await http.request("BREW", "/items/a")
        text = await scrape(http)
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    assert sample(text, "chatstack_http_requests_total", **unmatched) == 3
    brewed = {"method": "OTHER", "route": "/items/{item_id}", "status": "405"}
    assert sample(text, "chatstack_http_requests_total", **brewed) == 1


async def test_error_answers_are_counted_by_the_code_their_body_gives() -> None:
    app, _ = make_app()
    async with client(app) as http:
        await http.get("/missing/1")
        await http.get("/missing/2")
        await http.get("/openai-error")
        await http.get("/conflict")  # FastAPI's own {"detail"} body: no code in it
        await http.get("/items/ok")
        text = await scrape(http)
    assert sample(text, "chatstack_errors_total", code="not_found") == 2
    assert sample(text, "chatstack_errors_total", code="upstream_timeout") == 1
    assert sample(text, "chatstack_errors_total", code="http_409") == 1
    total = sum(
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "chatstack_errors_total"
    )
    assert total == 4


def test_error_code_takes_only_word_like_codes() -> None:
    assert error_code(b'{"detail":"x","code":"storage_full"}', 507) == "storage_full"
    assert error_code(b'{"error":{"type":"invalid_request_error","code":null}}', 400) == (
        "invalid_request_error"
    )
    assert error_code(b'{"code":"/api/sessions/123 <script>"}', 400) == "http_400"
    assert error_code(b"<html>bad gateway</html>", 502) == "http_502"


async def test_a_streamed_answer_passes_whole_and_is_counted_once() -> None:
    app, _ = make_app()
    async with client(app) as http:
        response = await http.get("/stream")
        text = await scrape(http)
    assert response.text == "part 0\npart 1\npart 2\n"
    assert sample(
        text, "chatstack_http_requests_total", method="GET", route="/stream", status="200"
    )


async def test_the_request_id_header_is_the_request_id_while_it_is_handled() -> None:
    app, _ = make_app()
    async with client(app) as http:
        tagged = await http.get("/items/a", headers={"X-Request-ID": "req-42"})
        untagged = await http.get("/items/a")
        long = await http.get("/items/a", headers={"X-Request-ID": "x" * 500})
    assert tagged.json()["request_id"] == "req-42"
    assert untagged.json()["request_id"] is None
    assert long.json()["request_id"] == "x" * 128
    assert request_id.get() is None


async def test_two_apps_in_one_process_keep_their_own_counts() -> None:
    first, _ = make_app()
    second, _ = make_app()
    async with client(first) as a, client(second) as b:
        await a.get("/items/1")
        await a.get("/items/2")
        await b.get("/items/1")
        labels = {"method": "GET", "route": "/items/{item_id}", "status": "200"}
        assert sample(await scrape(a), "chatstack_http_requests_total", **labels) == 2
        assert sample(await scrape(b), "chatstack_http_requests_total", **labels) == 1


COUNT_IN_A_PROCESS = """
from common.metrics import ServiceMetrics
ServiceMetrics().count_request("GET", "/items/{item_id}", 200)
"""

EXPOSE = """
from common.metrics import ServiceMetrics
print(ServiceMetrics().exposition().decode())
"""


def run(code: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def test_multiprocess_mode_adds_up_every_process(tmp_path: Path) -> None:
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _ in range(3):
        run(COUNT_IN_A_PROCESS, env)
    text = run(EXPOSE, env)
    labels = {"method": "GET", "route": "/items/{item_id}", "status": "200"}
    assert sample(text, "chatstack_http_requests_total", **labels) == 3
    # Without the directory each process answers for itself alone.
    assert sample(run(EXPOSE, {}), "chatstack_http_requests_total", **labels) == 0


async def test_a_routers_prefix_is_part_of_the_route_label() -> None:
    app, _ = make_app()
    router = APIRouter()

    @router.get("/things/{thing_id}/parts/{part}")
    async def part(thing_id: str, part: str) -> str:
        return part

    app.include_router(router, prefix="/v1")
    async with client(app) as http:
        assert (await http.get("/v1/things/t1/parts/p2")).status_code == 200
        text = await scrape(http)
    labels = {"method": "GET", "route": "/v1/things/{thing_id}/parts/{part}", "status": "200"}
    assert sample(text, "chatstack_http_requests_total", **labels) == 1
