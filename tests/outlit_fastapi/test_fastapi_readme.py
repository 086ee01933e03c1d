"""README.md's FastAPI examples, run as written (read from the README: see tests/conftest.py)
against a real local collector on 127.0.0.1, with the app served by Starlette's TestClient
inside ``with`` so that its lifespan runs.

The README's key is its placeholder ``pk_...``, which the collector refuses as the service
would: the tests put a test key in its place. Not run here: the Middleware block (its
``routes=[...]`` is left to the reader) and the Mangum block (tests/outlit_fastapi/
test_fastapi_mangum.py serves the same setup).
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from outlit._collector.server import Collector
from outlit_fastapi import Outlit

PLACEHOLDER = '"pk_..."'


def with_test_key(source: str) -> str:
    assert PLACEHOLDER in source
    return source.replace(PLACEHOLDER, '"pk_readme"')


@pytest.fixture
def host(collector: Collector, monkeypatch: pytest.MonkeyPatch) -> Collector:
    monkeypatch.setenv("OUTLIT_API_HOST", collector.url)
    return collector


def stored(collector: Collector) -> list[dict[str, Any]]:
    """Every stored event, oldest first; every ingest request must have been accepted."""
    assert [r.status for r in collector.requests] == [200] * len(collector.requests)
    return list(reversed(collector.events(limit=100)))


def test_the_opening_example_delivers_at_shutdown(host, readme_blocks, run_readme_block):
    _django, _flask, fastapi = readme_blocks(["# outlit-python"])
    assert "outlit_fastapi" in fastapi
    module = run_readme_block("readme_fastapi_hero", with_test_key(fastapi))

    with TestClient(module.app) as client:
        assert client.post("/export").json() == {"ok": True}
    # The lifespan's shutdown delivered the event: no waiting here.

    (event,) = stored(host)
    assert (event["eventName"], event["email"]) == ("report_exported", "jane@acme.com")


def test_the_sections_app_tracks_through_both_dependencies(host, readme_blocks, run_readme_block):
    source = readme_blocks(["## FastAPI and Starlette"])[0]
    module = run_readme_block("readme_fastapi_app", with_test_key(source))

    with TestClient(module.app) as client:
        assert client.post("/export").status_code == 200
        assert client.post("/upgrade").status_code == 200

    exported, paid = stored(host)
    assert (exported["eventName"], exported["email"]) == ("report_exported", "jane@acme.com")
    assert (paid["type"], paid["status"], paid["customerDomain"]) == ("billing", "paid", "acme.com")
    assert paid["properties"] == {"plan": "pro"}


class Database:
    """What the lifespan examples' ``connect()`` returns; closing it tracks an event, as an
    app's own shutdown might."""

    def __init__(self, outlit: Outlit) -> None:
        self.outlit = outlit

    async def close(self) -> None:
        self.outlit.track(event_name="database_closed", email="ops@acme.com")


@pytest.mark.parametrize("block", [0, 1], ids=["inside-our-lifespan", "wrap_lifespan"])
def test_the_lifespan_examples_deliver_what_the_apps_own_shutdown_tracks(
    host, readme_blocks, run_readme_block, block
):
    source = readme_blocks(["## FastAPI and Starlette", "### Lifespan"])[block]
    outlit = Outlit(public_key="pk_readme")

    async def connect() -> Database:
        return Database(outlit)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:  # the app's own, for the wrap_lifespan block
        app.state.db = await connect()
        yield
        await app.state.db.close()

    module = run_readme_block(
        "readme_fastapi_lifespan",
        source,
        outlit=outlit,
        FastAPI=FastAPI,
        asynccontextmanager=asynccontextmanager,
        connect=connect,
        lifespan=lifespan,
    )

    @module.app.post("/export")
    def export() -> None:
        outlit.track(event_name="report_exported", email="jane@acme.com")

    with TestClient(module.app) as client:
        assert client.post("/export").status_code == 200

    # Ours stopped last: the event tracked as the app's own lifespan closed was delivered too.
    assert [e["eventName"] for e in stored(host)] == ["report_exported", "database_closed"]
