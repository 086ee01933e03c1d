"""``OUTLIT_FLUSH_ON_TEARDOWN``: a bounded flush when the app context ends, never raising."""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import g

from outlit import MockTransport, RetryPolicy, TransportError
from outlit_flask import Outlit, signals


def _tracking_app(make_app: Any, **config: Any) -> Any:
    app = make_app(**config)
    Outlit(app)

    @app.post("/export")
    def export() -> str:
        g.outlit.track(event_name="report_exported", customer_id="cust_1")
        return "ok"

    @app.get("/quiet")
    def quiet() -> str:
        return "ok"

    return app


def test_events_are_sent_before_the_response_is_returned(make_app, transport):
    app = _tracking_app(make_app, OUTLIT_FLUSH_ON_TEARDOWN=True)

    assert app.test_client().post("/export").status_code == 200
    # No flush() here: the teardown already sent it.
    assert [e["eventName"] for e in transport.events] == ["report_exported"]
    assert app.extensions["outlit"].queue_size == 0


def test_by_default_teardown_leaves_sending_to_the_background_worker(make_app, transport):
    app = _tracking_app(make_app)

    app.test_client().post("/export")
    assert transport.requests == []
    assert app.extensions["outlit"].queue_size == 1
    assert app.teardown_appcontext_funcs == []


def test_teardown_flushed_reports_each_flush_with_its_app(make_app, transport):
    app = _tracking_app(make_app, OUTLIT_FLUSH_ON_TEARDOWN=True)
    results: list[tuple[Any, Any]] = []

    def receiver(sender: Any, result: Any, **extra: Any) -> None:
        results.append((sender, result))

    with signals.teardown_flushed.connected_to(receiver, sender=app):
        client = app.test_client()
        client.post("/export")
        client.get("/quiet")  # nothing queued: no flush, no signal

    assert len(results) == 1
    sender, result = results[0]
    assert sender is app
    assert result and result.pending == 0


def test_teardown_flush_is_bounded_and_never_raises_when_sending_fails(make_app):
    def refuse(request: Any) -> Any:
        raise TransportError("connection refused")

    app = _tracking_app(
        make_app,
        OUTLIT_FLUSH_ON_TEARDOWN=True,
        OUTLIT_SHUTDOWN_TIMEOUT=0.3,
        OUTLIT_TRANSPORT=MockTransport(refuse),
        OUTLIT_RETRY=RetryPolicy(),
    )
    results: list[Any] = []

    def receiver(sender: Any, result: Any, **extra: Any) -> None:
        results.append(result)

    with signals.teardown_flushed.connected_to(receiver, sender=app):
        started = time.monotonic()
        response = app.test_client().post("/export")
        elapsed = time.monotonic() - started

    assert response.status_code == 200
    assert 0.25 < elapsed < 1.5
    (result,) = results
    assert not result
    assert result.pending == 1


def test_a_raising_teardown_receiver_is_logged_not_raised(make_app, transport, caplog):
    app = _tracking_app(make_app, OUTLIT_FLUSH_ON_TEARDOWN=True)

    def broken(sender: Any, **extra: Any) -> None:
        raise ZeroDivisionError("receiver bug")

    with (
        signals.teardown_flushed.connected_to(broken, sender=app),
        caplog.at_level(logging.ERROR, logger="outlit"),
    ):
        response = app.test_client().post("/export")

    assert response.status_code == 200
    assert "a teardown_flushed receiver raised" in caplog.text
    assert len(transport.events) == 1
