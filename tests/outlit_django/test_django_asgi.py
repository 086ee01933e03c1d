"""``OutlitLifespan``: the ASGI lifespan protocol for Django, flushing at server shutdown."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from django.core.asgi import get_asgi_application

from outlit_django import outlit
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
