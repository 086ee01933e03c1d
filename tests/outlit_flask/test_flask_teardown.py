"""``OUTLIT_FLUSH_ON_TEARDOWN``: a flush when the app context ends, bounded by
``OUTLIT_TEARDOWN_FLUSH_TIMEOUT`` (not the longer exit-time wait), never raising."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import g

from outlit import FlushResult, MockTransport, RetryPolicy, TransportError
from outlit_flask import Outlit, signals


def _tracking_app(make_app: Any, extension: Outlit | None = None, **config: Any) -> Any:
    app = make_app(**config)
    (extension or Outlit()).init_app(app)

    @app.post("/export")
    def export() -> str:
        g.outlit.track(event_name="report_exported", customer_id="cust_1")
        return "ok"

    @app.get("/quiet")
    def quiet() -> str:
        return "ok"

    return app


@contextmanager
def _teardown_results(app: Any) -> Iterator[list[FlushResult]]:
    results: list[FlushResult] = []

    def receiver(sender: Any, result: FlushResult, **extra: Any) -> None:
        results.append(result)

    with signals.teardown_flushed.connected_to(receiver, sender=app):
        yield results


def test_events_are_sent_before_the_response_is_returned(make_app, transport):
    app = _tracking_app(make_app, OUTLIT_FLUSH_ON_TEARDOWN=True)

    assert app.test_client().post("/export").status_code == 200
    # No flush() here: the teardown already sent it.
    assert [e["eventName"] for e in transport.events] == ["report_exported"]
    assert app.extensions["outlit"].queue_size == 0


def test_what_the_apps_own_teardowns_track_goes_with_the_flush(make_app, transport):
    # Flask runs teardown_appcontext functions in reverse order of registration: the flush
    # must still come after a teardown registered before init_app (a database module's).
    app = make_app(OUTLIT_FLUSH_ON_TEARDOWN=True)
    extension = Outlit()

    @app.teardown_appcontext
    def registered_before(exc: BaseException | None) -> None:
        extension.track(event_name="tracked_before", customer_id="cust_1")

    extension.init_app(app)

    @app.teardown_appcontext
    def registered_after(exc: BaseException | None) -> None:
        extension.track(event_name="tracked_after", customer_id="cust_1")

    @app.get("/")
    def index() -> str:
        return "ok"

    assert app.test_client().get("/").status_code == 200
    assert app.extensions["outlit"].queue_size == 0
    assert sorted(e["eventName"] for e in transport.events) == ["tracked_after", "tracked_before"]


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
        OUTLIT_TEARDOWN_FLUSH_TIMEOUT=0.3,
        OUTLIT_TRANSPORT=MockTransport(refuse),
        OUTLIT_RETRY=RetryPolicy(),
    )

    with _teardown_results(app) as results:
        started = time.monotonic()
        response = app.test_client().post("/export")
        elapsed = time.monotonic() - started

    assert response.status_code == 200
    # Far below the 5 s OUTLIT_SHUTDOWN_TIMEOUT, which the teardown flush does not use.
    assert 0.25 < elapsed < 3.0
    (result,) = results
    assert not result
    assert result.pending == 1


def test_a_request_that_tracked_nothing_gives_a_held_back_backlog_its_chance(make_app):
    # Serverless during an outage: events of an earlier request are still queued. The next
    # request tracks nothing, yet its teardown tries them again (each invocation is their
    # chance to leave before the function is frozen); an empty queue costs no wait.
    outage_ends = [float("inf")]

    def flaky(request: Any) -> Any:
        return 503 if time.monotonic() < outage_ends[0] else 200

    transport = MockTransport(flaky)
    app = _tracking_app(
        make_app,
        OUTLIT_FLUSH_ON_TEARDOWN=True,
        OUTLIT_TEARDOWN_FLUSH_TIMEOUT=0.2,
        OUTLIT_TRANSPORT=transport,
        OUTLIT_RETRY=RetryPolicy(initial_backoff=0.05, max_backoff=0.05),
    )
    client = app.test_client()

    with _teardown_results(app) as results:
        client.post("/export")  # every send fails for now: the event stays queued
        started = time.monotonic()
        client.get("/quiet")  # tracks nothing, but the backlog is tried again
        waited = time.monotonic() - started
        outage_ends[0] = time.monotonic()
        with app.app_context():
            assert app.extensions["outlit"].flush(10)
        client.get("/quiet")  # nothing queued: no flush, no signal

    assert [(bool(result), result.pending) for result in results] == [(False, 1), (False, 1)]
    assert waited >= 0.15  # OUTLIT_TEARDOWN_FLUSH_TIMEOUT
    assert app.extensions["outlit"].stats.delivered == 1


def _slow_collector_app(
    make_app: Any, collector: Any, latency: float, extension: Outlit | None = None, **config: Any
) -> Any:
    """An app sending over HTTP to the loopback collector, which takes ``latency`` seconds to
    answer each batch."""
    collector.latency = latency
    return _tracking_app(
        make_app,
        extension,
        OUTLIT_API_HOST=collector.url,
        OUTLIT_TRANSPORT=None,
        OUTLIT_FLUSH_ON_TEARDOWN=True,
        **config,
    )


def _assert_delivered_once_later(app: Any, collector: Any) -> None:
    # The background worker finishes the send the teardown stopped waiting for.
    (event,) = collector.wait_for_events(1, timeout=15)
    assert event["eventName"] == "report_exported"
    with app.app_context():
        assert app.extensions["outlit"].flush(15.0)
    assert len(collector.events()) == 1
    assert collector.stats.duplicates == 0


def test_teardown_flush_stops_waiting_for_a_slow_collector_by_default(make_app, collector):
    # The collector answers after 3.5 s: past the 2 s teardown bound, within the 5 s
    # exit-time OUTLIT_SHUTDOWN_TIMEOUT. Waiting for the latter would deliver the event.
    app = _slow_collector_app(make_app, collector, latency=3.5)
    assert app.config["OUTLIT_TEARDOWN_FLUSH_TIMEOUT"] == 2.0
    assert app.extensions["outlit"].options.shutdown_timeout == 5.0

    with _teardown_results(app) as results:
        response = app.test_client().post("/export")

    assert response.status_code == 200
    (result,) = results
    assert not result, "the response waited until the slow collector answered"
    assert result.pending == 1
    _assert_delivered_once_later(app, collector)


@pytest.mark.parametrize(
    ("extension_options", "config"),
    [
        pytest.param({}, {"OUTLIT_TEARDOWN_FLUSH_TIMEOUT": 0.1}, id="config-key"),
        pytest.param({"teardown_flush_timeout": 0.1}, {}, id="constructor-keyword"),
    ],
)
def test_teardown_flush_timeout_bounds_the_wait_for_the_response(
    make_app, collector, extension_options, config
):
    # A collector answering in 1 s, a 30 s exit-time wait and a 0.1 s teardown bound: only
    # the teardown bound leaves the event undelivered when the response goes out.
    app = _slow_collector_app(
        make_app,
        collector,
        latency=1.0,
        extension=Outlit(**extension_options),
        OUTLIT_SHUTDOWN_TIMEOUT=30.0,
        OUTLIT_TIMEOUT=30.0,
        **config,
    )

    with _teardown_results(app) as results:
        response = app.test_client().post("/export")

    assert response.status_code == 200
    (result,) = results
    assert not result
    assert result.pending == 1
    _assert_delivered_once_later(app, collector)


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
