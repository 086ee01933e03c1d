"""``OutlitLifespan``: the ASGI lifespan protocol for Django, flushing at server shutdown, and the
warning when requests are served in async mode without it."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from django.core.asgi import get_asgi_application
from django.test import AsyncClient, Client

from outlit_django import asgi, outlit
from outlit_django.asgi import OutlitLifespan
from outlit_django.client import peek_client


def run_lifespan(app: Any) -> list[dict[str, Any]]:
    """Play a server's side of the lifespan protocol; return what the app sent."""
    sent: list[dict[str, Any]] = []

    async def main() -> None:
        messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

        async def receive() -> dict[str, Any]:
            return messages.pop(0)

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)

    asyncio.run(main())
    return sent


def test_shutdown_delivers_what_the_client_holds(configure_outlit):
    transport = configure_outlit()
    outlit.track(user_id="1", event_name="before_shutdown")
    sent = run_lifespan(OutlitLifespan(get_asgi_application()))
    assert sent == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]
    assert [e["eventName"] for e in transport.events] == ["before_shutdown"]
    # A flush, not a shutdown: threads still running may go on tracking.
    assert not outlit.closed
    outlit.track(user_id="1", event_name="after_shutdown")


def test_startup_creates_no_client_and_shutdown_without_one_is_quiet(configure_outlit, caplog):
    configure_outlit()
    with caplog.at_level(logging.WARNING, logger="outlit"):
        sent = run_lifespan(OutlitLifespan(get_asgi_application()))
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert peek_client() is None
    assert caplog.records == []


def test_a_service_that_does_not_answer_holds_shutdown_no_longer_than_its_timeout(
    configure_outlit, collector, caplog
):
    configure_outlit(API_HOST=collector.url, TRANSPORT=None, SHUTDOWN_TIMEOUT=0.3)
    collector.latency = 2
    outlit.track(user_id="1", event_name="slow")
    loop_time: list[float] = []

    async def timed() -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.to_thread(run_lifespan, OutlitLifespan(get_asgi_application()))
        loop_time.append(loop.time() - started)

    with caplog.at_level(logging.WARNING, logger="outlit"):
        asyncio.run(timed())
    assert loop_time[0] < 1.5
    assert any("still queued when the server shut down" in r.getMessage() for r in caplog.records)


def test_http_goes_straight_to_django(configure_outlit):
    configure_outlit()
    calls: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        calls.append(scope["type"])

    wrapped = OutlitLifespan(app)
    asyncio.run(wrapped({"type": "http"}, None, None))  # type: ignore[arg-type]
    asyncio.run(wrapped({"type": "websocket"}, None, None))  # type: ignore[arg-type]
    assert calls == ["http", "websocket"]


@pytest.fixture
def fresh_process(monkeypatch):
    """This process as a server starts it: no OutlitLifespan yet, no warning given yet."""
    monkeypatch.setattr(asgi, "_wrapped", False)
    monkeypatch.setattr(asgi, "_started", False)
    monkeypatch.setattr(asgi, "_warned", False)


def lifespan_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "lifespan" in r.getMessage().lower()]


async def serve_requests(count: int) -> None:
    for _ in range(count):  # a new client each time: each builds its own middleware chain
        response = await AsyncClient().get("/quiet/")
        assert response.content == b"quiet"


def test_async_requests_without_the_lifespan_warn_once_naming_the_fix(
    configure_outlit, fresh_process, caplog
):
    configure_outlit()
    with caplog.at_level(logging.WARNING, logger="outlit"):
        asyncio.run(serve_requests(3))
    (message,) = lifespan_warnings(caplog)
    assert "not wrapped in outlit_django.asgi.OutlitLifespan" in message
    assert "application = OutlitLifespan(get_asgi_application())" in message
    assert "README" in message
    (record,) = [r for r in caplog.records if r.getMessage() == message]
    assert record.levelno == logging.WARNING
    assert record.name.split(".")[0] == "outlit"


def test_no_warning_once_the_lifespan_has_started(configure_outlit, fresh_process, caplog):
    configure_outlit()
    run_lifespan(OutlitLifespan(get_asgi_application()))
    with caplog.at_level(logging.WARNING, logger="outlit"):
        asyncio.run(serve_requests(2))
    assert lifespan_warnings(caplog) == []


def test_a_wrapped_application_the_server_sends_no_lifespan_is_told_so(
    configure_outlit, fresh_process, caplog
):
    configure_outlit()
    OutlitLifespan(get_asgi_application())  # as asgi.py does, under `uvicorn --lifespan off`
    with caplog.at_level(logging.WARNING, logger="outlit"):
        asyncio.run(serve_requests(2))
    (message,) = lifespan_warnings(caplog)
    assert "sent it no lifespan startup" in message
    assert "--lifespan" in message


def test_sync_requests_never_warn(configure_outlit, fresh_process, caplog):
    configure_outlit()
    with caplog.at_level(logging.WARNING, logger="outlit"):
        assert Client().get("/quiet/").content == b"quiet"
    assert lifespan_warnings(caplog) == []
    assert asgi._warned is False
