"""FastAPI and Starlette on trio (anyio runs either; hypercorn's trio worker and
``TestClient(app, backend="trio")`` use it): every async wait works there as under asyncio.

No ``from __future__ import annotations``: FastAPI reads these local routes' annotations.
"""

from importlib import metadata
from typing import Annotated

import anyio
import httpx
import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from starlette.requests import Request

from outlit import BoundTracker
from outlit_fastapi import OutlitMiddleware

trio = pytest.importorskip("trio", reason="trio is in the dev extra; this install lacks it")
ANYIO = metadata.version("anyio")
TRIO = tuple(int(part) for part in trio.__version__.split(".")[:2])
if int(ANYIO.split(".")[0]) < 4 and TRIO >= (0, 24):  # trio 0.24 removed trio.MultiError
    pytest.skip(
        f"anyio {ANYIO} (the oldest Starlette's) runs trio only up to 0.23, which does not "
        f"run on this Python; trio {trio.__version__} is installed",
        allow_module_level=True,
    )

# anyio 3 (under the oldest Starlette tox.ini tests) builds on trio.MultiError, which the trio
# releases it works with deprecate: anyio's warning, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:trio.MultiError is deprecated")


def test_a_route_that_awaits_aflush_under_trio_delivers_before_it_answers(make_outlit, collector):
    outlit = make_outlit(api_host=collector.url, flush_interval=300)
    app = FastAPI()

    @app.post("/done")
    async def done(tracker: Annotated[BoundTracker, Depends(outlit)]):
        tracker.track(event_name="conversation_ended", user_id="u1")
        result = await tracker.aflush(timeout=5)
        return {"settled": bool(result), "stored": collector.stats.events_stored}

    async def main() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return await client.post("/done")

    response = anyio.run(main, backend="trio")
    assert response.status_code == 200
    assert response.json() == {"settled": True, "stored": 1}


def test_the_lifespan_under_trio_delivers_at_shutdown(make_outlit, collector, caplog):
    outlit = make_outlit(api_host=collector.url, flush_interval=300)
    app = FastAPI(lifespan=outlit.lifespan)

    @app.post("/export")
    async def export(tracker: Annotated[BoundTracker, Depends(outlit)]):
        tracker.track(event_name="report_exported", user_id="u1")
        return {}

    with caplog.at_level("ERROR", logger="outlit"), TestClient(app, backend="trio") as client:
        for _ in range(3):
            assert client.post("/export").status_code == 200
        assert collector.stats.events_stored == 0  # only the shutdown can deliver them
    assert outlit.client.closed
    assert collector.stats.events_stored == 3
    assert [r.getMessage() for r in caplog.records] == []


def test_flush_after_response_under_trio_waits_for_delivery(make_outlit, collector, caplog):
    outlit = make_outlit(api_host=collector.url, flush_interval=300, flush_after_response=True)
    app = FastAPI()
    app.add_middleware(OutlitMiddleware, outlit=outlit)

    @app.post("/export")
    async def export(request: Request):
        request.state.outlit.track(event_name="report_exported", user_id="u1")
        return {}

    with caplog.at_level("ERROR", logger="outlit"):
        client = TestClient(app, backend="trio")  # returns once the app returned
        for n in range(1, 4):
            assert client.post("/export").status_code == 200
            assert collector.stats.events_stored == n
    assert [r.getMessage() for r in caplog.records] == []
