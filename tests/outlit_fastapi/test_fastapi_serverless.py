"""``Outlit(flush_after_response=True)``: for hosts that freeze the process once a response is
returned (Mangum on AWS Lambda), each request waits for its events to be delivered, after its
response has been sent, for a bounded time, without blocking the event loop.

No ``from __future__ import annotations``: FastAPI reads these local routes' annotations.
"""

import asyncio
import logging
import time
from typing import Annotated, Any

import httpx
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.websockets import WebSocket

from outlit import BoundTracker
from outlit_fastapi import Outlit, OutlitMiddleware


def _dependency_app(outlit: Outlit) -> FastAPI:
    # No lifespan on purpose: Lambda adapters may skip it, and it would flush on its own.
    app = FastAPI()

    @app.post("/export")
    async def export(tracker: Annotated[BoundTracker, Depends(outlit)]):
        tracker.track(event_name="report_exported", user_id="u1")
        return {"ok": True}

    @app.get("/ping")
    async def ping():
        return {"pong": True}

    return app


def _middleware_app(outlit: Outlit) -> FastAPI:
    app = FastAPI()
    app.add_middleware(OutlitMiddleware, outlit=outlit)

    @app.post("/export")
    async def export(request: Request):
        request.state.outlit.track(event_name="report_exported", user_id="u1")
        outlit.track(event_name="app_wide_call", customer_id="cust_1")
        return {"ok": True}

    @app.post("/export-later")
    async def export_later():
        def track_in_background() -> None:
            outlit.track(event_name="tracked_in_background_task", customer_id="cust_1")

        return JSONResponse({"ok": True}, background=BackgroundTask(track_in_background))

    @app.get("/quiet")
    async def quiet():
        return {}

    return app


async def _call(app: Any, method: str, path: str) -> dict[str, Any]:
    """Drive the app as a server would; note when the last body byte went out and when the app
    returned (what a Lambda adapter waits for)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"app")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.sleep(30)  # the client stays connected
        return {"type": "http.disconnect"}  # pragma: no cover

    result: dict[str, Any] = {"started": time.monotonic()}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            result["status"] = message["status"]
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            result["body_sent"] = time.monotonic()

    await app(scope, receive, send)
    result["returned"] = time.monotonic()
    return result


def test_dependency_delivers_before_the_request_is_over(make_outlit, collector):
    outlit = make_outlit(api_host=collector.url, flush_interval=300, flush_after_response=True)
    client = TestClient(_dependency_app(outlit))  # TestClient returns once the app returned
    for _ in range(3):
        assert client.post("/export").json() == {"ok": True}
        assert outlit.queue_size == 0
    assert collector.stats.events_stored == 3
    assert outlit.client.stats.delivered == 3


def test_middleware_delivers_every_event_of_the_request(make_outlit, collector):
    outlit = make_outlit(api_host=collector.url, flush_interval=300, flush_after_response=True)
    client = TestClient(_middleware_app(outlit))
    assert client.post("/export").json() == {"ok": True}
    assert collector.stats.events_stored == 2
    assert client.post("/export-later").json() == {"ok": True}
    assert collector.stats.events_stored == 3
    names = {e["eventName"] for e in collector.events()}
    assert names == {"report_exported", "app_wide_call", "tracked_in_background_task"}


def test_an_exception_handler_that_tracks_delivers_with_the_documented_aflush(
    make_outlit, collector
):
    # Starlette runs a handler for Exception outside every middleware, after the middleware's
    # wait: the README's serverless section has such a handler end with `await outlit.aflush()`.
    outlit = make_outlit(api_host=collector.url, flush_interval=300, flush_after_response=True)
    app = FastAPI()
    app.add_middleware(OutlitMiddleware, outlit=outlit)

    @app.exception_handler(Exception)
    async def on_error(request: Request, exc: Exception):
        outlit.track(event_name="export_failed", user_id="u1")
        await outlit.aflush()
        return JSONResponse({"error": "internal"}, status_code=500)

    @app.post("/export")
    async def export(request: Request):
        request.state.outlit.track(event_name="export_started", user_id="u1")
        raise RuntimeError("disk full")

    client = TestClient(app, raise_server_exceptions=False)  # returns once the app returned
    assert client.post("/export").status_code == 500
    assert outlit.queue_size == 0
    assert sorted(e["eventName"] for e in collector.events()) == [
        "export_failed",
        "export_started",
    ]


def test_a_websocket_route_with_the_middleware_warns_of_nothing(make_outlit, caplog):
    # The middleware passes websockets through and there is no response to wait after: the
    # dependency must not say the middleware is missing.
    outlit = make_outlit(flush_interval=300, flush_after_response=True)
    app = FastAPI()
    app.add_middleware(OutlitMiddleware, outlit=outlit)

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, tracker: Annotated[BoundTracker, Depends(outlit)]):
        await websocket.accept()
        tracker.track(event_name="ws_message", user_id="u1")
        await websocket.close()

    with caplog.at_level(logging.WARNING, logger="outlit"):
        with TestClient(app) as client, client.websocket_connect("/ws"):
            pass
        assert outlit.client.flush(5)
    assert not [r for r in caplog.records if "without OutlitMiddleware" in r.getMessage()]
    assert outlit.client.stats.delivered == 1


def test_response_is_sent_before_the_flush_starts_waiting(make_outlit, collector):
    collector.latency = 0.8
    for build in (_dependency_app, _middleware_app):
        outlit = make_outlit(api_host=collector.url, flush_interval=300, flush_after_response=True)
        result = asyncio.run(_call(build(outlit), "POST", "/export"))
        assert result["status"] == 200
        assert result["body_sent"] - result["started"] < 0.4, build.__name__
        assert result["returned"] - result["body_sent"] >= 0.7, build.__name__
    assert collector.stats.events_stored == 3


def _bounded_against_a_slow_collector(
    make_outlit: Any, collector: Any, latency: float, timeout: float
) -> Outlit:
    collector.latency = latency
    outlit: Outlit = make_outlit(
        api_host=collector.url,
        flush_interval=300,
        flush_after_response=True,
        flush_after_response_timeout=timeout,
    )
    return outlit


def test_the_wait_is_bounded_by_flush_after_response_timeout(make_outlit, collector):
    outlit = _bounded_against_a_slow_collector(make_outlit, collector, latency=1.2, timeout=0.2)
    result = asyncio.run(_call(_dependency_app(outlit), "POST", "/export"))
    assert 0.15 <= result["returned"] - result["started"] < 0.8
    # Given up on by this request, not by the client: the send in progress completes.
    assert collector.wait_for_events(1, timeout=5)[0]["eventName"] == "report_exported"


def test_with_the_middleware_and_the_dependency_a_request_waits_once(make_outlit, collector):
    # The serverless section adds the middleware while routes keep Depends(outlit): the
    # dependency leaves the wait to the middleware instead of adding a second one.
    outlit = _bounded_against_a_slow_collector(make_outlit, collector, latency=2.5, timeout=0.5)
    app = _dependency_app(outlit)
    app.add_middleware(OutlitMiddleware, outlit=outlit)
    result = asyncio.run(_call(app, "POST", "/export"))
    assert result["status"] == 200
    assert 0.45 <= result["returned"] - result["body_sent"] < 0.9  # two waits: 1.0 s
    assert collector.wait_for_events(1, timeout=5)[0]["eventName"] == "report_exported"


def test_the_dependency_alone_says_once_what_its_wait_misses(make_outlit, caplog):
    outlit = make_outlit(flush_interval=300, flush_after_response=True)
    with caplog.at_level(logging.WARNING, logger="outlit"):
        client = TestClient(_dependency_app(outlit))
        for _ in range(3):
            assert client.post("/export").status_code == 200
    said = [r.getMessage() for r in caplog.records if "without OutlitMiddleware" in r.getMessage()]
    assert len(said) == 1
    assert "app.add_middleware(OutlitMiddleware, outlit=outlit)" in said[0]
    caplog.clear()
    with_middleware = make_outlit(flush_interval=300, flush_after_response=True)
    app = _dependency_app(with_middleware)
    app.add_middleware(OutlitMiddleware, outlit=with_middleware)
    with caplog.at_level(logging.WARNING, logger="outlit"):
        assert TestClient(app).post("/export").status_code == 200
    assert not [r for r in caplog.records if "without OutlitMiddleware" in r.getMessage()]


def test_event_loop_serves_other_requests_while_a_flush_waits(make_outlit, collector):
    collector.latency = 0.8
    outlit = make_outlit(api_host=collector.url, flush_interval=300, flush_after_response=True)
    app = _dependency_app(outlit)

    async def scenario() -> tuple[float, list[float]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:

            async def timed(method: str, path: str) -> float:
                started = time.monotonic()
                response = await http.request(method, path)
                assert response.status_code == 200
                return time.monotonic() - started

            slow = asyncio.create_task(timed("POST", "/export"))
            await asyncio.sleep(0.1)  # the flush is now waiting on the collector
            pings = [await timed("GET", "/ping") for _ in range(5)]
            assert not slow.done(), "the pings were served while the flush was waiting"
            return await slow, pings

    slow, pings = asyncio.run(scenario())
    assert slow >= 0.7
    assert max(pings) < 0.3, pings
    assert sum(pings) < 0.6, pings


def test_flush_problems_never_reach_the_response(make_outlit, monkeypatch, caplog):
    async def broken_flush(timeout: float | None = None) -> Any:
        raise RuntimeError("no thread available")

    for build in (_dependency_app, _middleware_app):
        outlit = make_outlit(flush_interval=300, flush_after_response=True)
        monkeypatch.setattr(outlit.client, "aflush", broken_flush)
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="outlit"):
            response = TestClient(build(outlit)).post("/export")
        assert response.json() == {"ok": True}, build.__name__
        assert [r for r in caplog.records if "flush after the response" in r.getMessage()]


def test_requests_that_queue_nothing_do_not_wait(make_outlit, monkeypatch):
    outlit = make_outlit(flush_interval=300, flush_after_response=True)
    flushes: list[Any] = []

    async def recording_flush(timeout: float | None = None) -> Any:
        flushes.append(timeout)

    monkeypatch.setattr(outlit.client, "aflush", recording_flush)
    client = TestClient(_middleware_app(outlit))
    assert client.get("/quiet").status_code == 200
    assert flushes == []
    client.post("/export")
    assert flushes == [outlit.flush_after_response_timeout]
