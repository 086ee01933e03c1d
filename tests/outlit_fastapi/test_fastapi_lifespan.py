"""``outlit.lifespan``: delivery at shutdown without blocking the event loop, composition with an
app's own lifespan, and apps that run without any lifespan.

No ``from __future__ import annotations``: FastAPI reads these local routes' annotations.
"""

import asyncio
import contextlib
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from outlit import BoundTracker, MockTransport
from outlit import Outlit as CoreClient
from outlit_fastapi import Outlit


def _tracking_app(outlit: Outlit, **fastapi_kwargs: Any) -> FastAPI:
    app = FastAPI(**fastapi_kwargs)

    @app.post("/export/{n}")
    async def export(n: int, tracker: Annotated[BoundTracker, Depends(outlit)]):
        tracker.track(event_name="report_exported", user_id="u1", properties={"n": n})
        return {"n": n}

    @app.get("/sync/{n}")
    def sync_export(n: int, tracker: Annotated[BoundTracker, Depends(outlit)]):
        tracker.track(event_name="sync_export", user_id="u1", properties={"n": n})
        return {"n": n}

    return app


def test_shutdown_delivers_every_queued_event_to_a_real_collector(make_outlit, collector):
    # A flush interval far longer than the test: only the lifespan's shutdown can deliver.
    outlit = make_outlit(api_host=collector.url, flush_interval=300)
    app = _tracking_app(outlit, lifespan=outlit.lifespan)
    with TestClient(app) as client:
        for n in range(5):
            assert client.post(f"/export/{n}").status_code == 200
        assert outlit.queue_size == 5
        assert collector.stats.events_stored == 0
    assert outlit.client.closed
    events = collector.wait_for_events(5, timeout=5)
    assert sorted(e["properties"]["n"] for e in events) == [0, 1, 2, 3, 4]
    assert len({e["uuid"] for e in events}) == 5


def test_each_lifespan_run_gets_a_working_client(make_outlit, transport):
    # Test suites run one lifespan per `with TestClient(app)` on one module-level app.
    outlit = make_outlit()
    app = _tracking_app(outlit, lifespan=outlit.lifespan)
    clients = []
    for n in range(3):
        with TestClient(app) as client:
            assert client.post(f"/export/{n}").status_code == 200
            clients.append(outlit.client)
    assert len({id(c) for c in clients}) == 3
    assert all(c.closed for c in clients)
    assert [e["properties"]["n"] for e in transport.events] == [0, 1, 2]


def test_after_a_lifespan_ended_the_outlit_keeps_working_without_one(
    make_outlit, transport, caplog
):
    # One module-level outlit serves every test: a test with `with TestClient(app)` shuts its
    # client down at the end (its stats stay readable), and a later test without a lifespan,
    # or code outside a request, gets a fresh client instead of ClientClosedError.
    outlit = make_outlit(flush_interval=300)
    app = _tracking_app(outlit, lifespan=outlit.lifespan)
    with TestClient(app) as client:
        assert client.post("/export/1").status_code == 200
    first = outlit.client
    assert first.closed and outlit.stats.delivered == 1
    with caplog.at_level("WARNING", logger="outlit"):
        assert TestClient(app).post("/export/2").status_code == 200  # no lifespan this time
    assert _lifespan_warnings(caplog) == []  # one of ours did run in this process
    outlit.track(event_name="nightly_report", customer_id="c1")
    assert outlit.client is not first and not outlit.client.closed
    assert outlit.flush(timeout=5)
    assert [e["eventName"] for e in transport.events] == [
        "report_exported",
        "report_exported",
        "nightly_report",
    ]


def test_after_a_cancelled_lifespan_shutdown_requests_still_get_a_live_client(make_outlit):
    # A test's lifespan manager that gives up on a slow shutdown (asgi-lifespan's default
    # shutdown_timeout is 5 s, as is outlit's) cancels our wait; the next test's requests,
    # served without a lifespan, must not meet the client that shutdown closed.
    def slow(request: Any) -> int:
        time.sleep(0.5)
        return 200

    outlit = make_outlit(transport=MockTransport(slow), flush_interval=300)
    app = _tracking_app(outlit, lifespan=outlit.lifespan)

    async def lifespan_cut_short() -> None:
        async def run() -> None:
            async with outlit.lifespan(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                    assert (await http.post("/export/1")).status_code == 200

        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(run(), 0.1)

    asyncio.run(lifespan_cut_short())
    first = outlit.client
    first.shutdown(timeout=5)  # the cancelled shutdown, finishing in its thread
    assert first.closed
    assert TestClient(app).post("/export/2").status_code == 200
    assert outlit.client is not first and not outlit.client.closed


def test_after_the_app_shut_the_outlit_down_itself_requests_keep_working(
    make_outlit, transport, caplog
):
    # A test fixture that calls outlit.shutdown() at teardown (or an on_event("shutdown")
    # handler that awaits ashutdown()), then a request served without a lifespan of ours.
    outlit = make_outlit(flush_interval=300)
    app = _tracking_app(outlit)
    with caplog.at_level("WARNING", logger="outlit"):
        assert TestClient(app).post("/export/1").status_code == 200
        assert outlit.shutdown()
        first = outlit.client
        assert TestClient(app).post("/export/2").status_code == 200
        assert outlit.client is not first and first.closed
        asyncio.run(outlit.ashutdown())
        assert TestClient(app).post("/export/3").status_code == 200
    assert outlit.flush(timeout=5)
    assert [e["properties"]["n"] for e in transport.events] == [1, 2, 3]
    # Warned at the first request (no lifespan ran), not again after the app's own shutdown.
    assert len(_lifespan_warnings(caplog)) == 1


def test_own_lifespan_wrapped_keeps_its_state_and_its_shutdown_events(make_outlit, transport):
    outlit = make_outlit()
    steps: list[str] = []

    @contextlib.asynccontextmanager
    async def app_lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        steps.append("app startup")
        yield {"greeting": "hello"}
        # Code that runs after ours would miss this event if ours closed the client first.
        outlit.track(event_name="app_stopped", customer_id="cust_ops")
        steps.append("app shutdown")

    app = FastAPI(lifespan=outlit.wrap_lifespan(app_lifespan))

    @app.get("/greeting")
    async def greeting(request: Request, tracker: Annotated[BoundTracker, Depends(outlit)]):
        tracker.track(event_name="greeted", user_id="u1")
        return {"greeting": request.state.greeting}

    with TestClient(app) as client:
        assert client.get("/greeting").json() == {"greeting": "hello"}
    assert steps == ["app startup", "app shutdown"]
    assert [e["eventName"] for e in transport.events] == ["greeted", "app_stopped"]
    assert outlit.client.closed


def test_lifespan_entered_inside_an_apps_own_lifespan(make_outlit, transport):
    outlit = make_outlit()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with outlit.lifespan(app):
            yield {"db": "connected"}
            outlit.track(event_name="db_closing", customer_id="cust_ops")

    app = _tracking_app(outlit, lifespan=lifespan)

    @app.get("/db")
    async def db(request: Request):
        return {"db": request.state.db}

    with TestClient(app) as client:
        assert client.get("/db").json() == {"db": "connected"}
        client.post("/export/1")
    assert [e["eventName"] for e in transport.events] == ["report_exported", "db_closing"]


def test_app_lifespan_failing_at_startup_still_stops_the_client(make_outlit):
    outlit = make_outlit()

    @contextlib.asynccontextmanager
    async def failing(app: FastAPI) -> AsyncIterator[None]:
        raise ConnectionError("database unreachable")
        yield  # pragma: no cover

    app = FastAPI(lifespan=outlit.wrap_lifespan(failing))
    with pytest.raises(ConnectionError), TestClient(app):
        pass  # pragma: no cover
    assert outlit.client.closed


def test_two_apps_sharing_one_outlit_close_it_when_the_last_one_stops(make_outlit, transport):
    outlit = make_outlit()
    first = _tracking_app(outlit, lifespan=outlit.lifespan)
    second = _tracking_app(outlit, lifespan=outlit.lifespan)
    with TestClient(first) as a:
        with TestClient(second) as b:
            b.post("/export/2")
        assert not outlit.client.closed
        a.post("/export/1")
    assert outlit.client.closed
    assert sorted(e["properties"]["n"] for e in transport.events) == [1, 2]


def test_a_client_passed_in_is_flushed_but_left_open(transport):
    core = CoreClient(public_key="pk_shared", transport=transport, flush_interval=300)
    try:
        outlit = Outlit(client=core)
        with TestClient(_tracking_app(outlit, lifespan=outlit.lifespan)) as client:
            client.post("/export/1")
        assert not core.closed
        assert [e["properties"]["n"] for e in transport.events] == [1]
        core.track(event_name="still_usable", user_id="u1")
    finally:
        core.shutdown(timeout=2)
    assert [e["eventName"] for e in transport.events][-1] == "still_usable"


def test_event_loop_keeps_running_while_shutdown_waits_on_a_slow_collector(make_outlit, collector):
    collector.latency = 0.8
    outlit = make_outlit(api_host=collector.url, flush_interval=300)
    app = _tracking_app(outlit)

    async def scenario() -> tuple[float, int, Any]:
        async with outlit.lifespan(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
                assert (await http.post("/export/1")).status_code == 200
            ticks = 0
            stop = asyncio.Event()

            async def ticker() -> None:
                nonlocal ticks
                while not stop.is_set():
                    ticks += 1
                    await asyncio.sleep(0.01)

            task = asyncio.create_task(ticker())
            started = time.monotonic()
        elapsed = time.monotonic() - started  # the lifespan's exit: ashutdown() waiting
        stop.set()
        await task
        return elapsed, ticks, outlit.client.stats

    elapsed, ticks, stats = asyncio.run(scenario())
    assert elapsed >= 0.7, "the shutdown waited for the slow collector"
    # A blocked loop would tick once or twice; a free one ticks about every 10 ms (the bar
    # leaves room for a busy machine).
    assert ticks >= 10, ticks
    assert stats.delivered == 1
    assert collector.stats.events_stored == 1


def test_without_a_lifespan_httpx_asgi_transport_works_for_async_and_sync_routes(
    make_outlit, transport
):
    # httpx's ASGITransport, like some frameworks and serverless adapters, runs no lifespan.
    outlit = make_outlit(flush_interval=300)
    app = _tracking_app(outlit, lifespan=outlit.lifespan)

    async def scenario() -> list[int]:
        asgi = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=asgi, base_url="http://app") as http:
            codes = [(await http.post("/export/1")).status_code]
            codes.append((await http.get("/sync/2")).status_code)
        assert await outlit.aflush(timeout=5)
        return codes

    assert asyncio.run(scenario()) == [200, 200]
    assert [(e["eventName"], e["properties"]["n"]) for e in transport.events] == [
        ("report_exported", 1),
        ("sync_export", 2),
    ]


def _lifespan_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "without outlit.lifespan" in r.getMessage()]


def test_requests_without_the_lifespan_warn_once_that_a_server_stop_would_lose_events(
    make_outlit, caplog
):
    # uvicorn ends the process with the signal after its own shutdown: no exit handler runs.
    outlit = make_outlit(flush_interval=300)
    app = _tracking_app(outlit)  # no lifespan=outlit.lifespan
    with caplog.at_level("WARNING", logger="outlit"):
        client = TestClient(app)  # outside `with`: no lifespan runs
        assert client.post("/export/1").status_code == 200
        assert client.post("/export/2").status_code == 200
    (message,) = _lifespan_warnings(caplog)
    assert "FastAPI(lifespan=outlit.lifespan)" in message


@pytest.mark.parametrize("how", ["dependency", "middleware"])
def test_no_lifespan_warning_with_the_lifespan_or_a_flush_after_each_response(
    make_outlit, caplog, how
):
    from outlit_fastapi import OutlitMiddleware

    with_lifespan = make_outlit(flush_interval=300)
    flushing = make_outlit(flush_interval=300, flush_after_response=True)
    apps = []
    for outlit, kwargs in ((with_lifespan, {"lifespan": with_lifespan.lifespan}), (flushing, {})):
        if how == "dependency":
            apps.append(_tracking_app(outlit, **kwargs))
        else:
            app = FastAPI(**kwargs)
            app.add_middleware(OutlitMiddleware, outlit=outlit)

            @app.post("/export/{n}")
            async def export(n: int, request: Request):
                request.state.outlit.track(event_name="report_exported", user_id="u1")
                return {"n": n}

            apps.append(app)
    with caplog.at_level("WARNING", logger="outlit"):
        for app in apps:
            with TestClient(app) as client:
                assert client.post("/export/1").status_code == 200
    assert _lifespan_warnings(caplog) == []


def test_no_lifespan_warning_when_nothing_is_queued_or_the_client_is_the_apps_own(
    make_outlit, transport, caplog
):
    disabled = make_outlit(enabled=False)
    shared = CoreClient(public_key="pk_shared", transport=transport, flush_interval=300)
    try:
        with caplog.at_level("WARNING", logger="outlit"):
            for outlit in (disabled, Outlit(client=shared)):
                client = TestClient(_tracking_app(outlit))  # no lifespan runs
                assert client.post("/export/1").status_code == 200
        assert _lifespan_warnings(caplog) == []
    finally:
        shared.shutdown()


def test_starlette_app_can_use_the_lifespan(make_outlit, transport):
    outlit = make_outlit(flush_interval=300)

    async def home(request: Request) -> JSONResponse:
        outlit.track(event_name="home_viewed", fingerprint="device-1")
        return JSONResponse({})

    app = Starlette(routes=[Route("/", home)], lifespan=outlit.lifespan)
    with TestClient(app) as client:
        client.get("/")
    assert [e["eventName"] for e in transport.events] == ["home_viewed"]


@pytest.mark.slow
def test_without_a_lifespan_events_are_delivered_at_process_exit(collector, tmp_path):
    # An app whose server never runs the lifespan: the core's exit-time flush delivers.
    script = tmp_path / "no_lifespan.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio
            import httpx
            from fastapi import Depends, FastAPI
            from outlit_fastapi import Outlit

            outlit = Outlit(public_key="pk_exit", flush_interval=300)
            app = FastAPI(lifespan=outlit.lifespan)

            @app.post("/export")
            async def export(tracker=Depends(outlit)):
                tracker.track(event_name="exported_before_exit", user_id="u1")
                return {}

            async def main():
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://a") as c:
                    assert (await c.post("/export")).status_code == 200
                    assert (await c.post("/export")).status_code == 200
                assert outlit.queue_size == 2, outlit.queue_size

            asyncio.run(main())
            """
        )
    )
    env = {**os.environ, "OUTLIT_API_HOST": collector.url}
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    events = collector.wait_for_events(2, timeout=5)
    assert {e["eventName"] for e in events} == {"exported_before_exit"}
    assert len({e["uuid"] for e in events}) == 2
