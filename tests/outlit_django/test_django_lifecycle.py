"""Delivery tied to Django's lifecycle, over real HTTP to the local collector: the
``request_finished`` flush for serverless, its bound, and the core's signals seen from Django."""

from __future__ import annotations

import logging
import time
from typing import Any

from asgiref.sync import async_to_sync
from django.test import AsyncClient, Client

from outlit import RetryPolicy, signals
from outlit_django import outlit
from outlit_django.client import get_client

FAST_RETRY = RetryPolicy(initial_backoff=0.02, max_backoff=0.05)


def track(client: Client, **kwargs: Any) -> Any:
    kwargs.setdefault("event_name", "report_exported")
    kwargs.setdefault("fingerprint", "device-1")
    return client.post(
        "/call/", {"method": "track", "kwargs": kwargs}, content_type="application/json"
    )


def test_flush_on_request_finished_delivers_before_the_response_is_done(
    configure_outlit, collector
):
    configure_outlit(
        API_HOST=collector.url, TRANSPORT=None, FLUSH_ON_REQUEST_FINISHED=True, FLUSH_INTERVAL=60
    )
    assert track(Client(), properties={"n": 1}).status_code == 200
    # No waiting: the test client closes the response (request_finished) before returning.
    (event,) = collector.events()
    assert event["eventName"] == "report_exported"
    assert event["properties"] == {"n": 1}
    assert outlit.queue_size == 0


def test_without_it_the_event_waits_for_the_background_worker(configure_outlit, collector):
    configure_outlit(API_HOST=collector.url, TRANSPORT=None, FLUSH_INTERVAL=60)
    assert track(Client()).status_code == 200
    assert collector.events() == []
    assert outlit.queue_size == 1
    assert outlit.flush(timeout=5)
    assert len(collector.events()) == 1


def test_flush_on_request_finished_under_asgi(configure_outlit, collector):
    configure_outlit(API_HOST=collector.url, TRANSPORT=None, FLUSH_ON_REQUEST_FINISHED=True)

    async def post() -> Any:
        return await AsyncClient().post(
            "/acall/",
            {"method": "track", "kwargs": {"event_name": "async_export", "user_id": "u1"}},
            content_type="application/json",
        )

    assert async_to_sync(post)().status_code == 200
    (event,) = collector.events()
    assert event["eventName"] == "async_export"


def test_a_slow_service_holds_the_request_no_longer_than_the_flush_timeout(
    configure_outlit, collector
):
    configure_outlit(
        API_HOST=collector.url,
        TRANSPORT=None,
        FLUSH_ON_REQUEST_FINISHED=True,
        REQUEST_FLUSH_TIMEOUT=0.2,
        SHUTDOWN_TIMEOUT=5,
    )
    collector.latency = 1.5
    started = time.monotonic()
    assert track(Client()).status_code == 200
    elapsed = time.monotonic() - started
    assert 0.2 <= elapsed < 1.0
    # The event was not lost: it is still being delivered.
    assert len(collector.wait_for_events(1, timeout=5)) == 1


def test_a_flush_failure_never_reaches_the_response(configure_outlit, monkeypatch, caplog):
    configure_outlit(FLUSH_ON_REQUEST_FINISHED=True)
    client = get_client()

    def broken_flush(timeout: float | None = None) -> Any:
        raise RuntimeError("flush exploded")

    with monkeypatch.context() as patch, caplog.at_level(logging.ERROR, logger="outlit"):
        patch.setattr(client, "flush", broken_flush)
        assert track(Client()).status_code == 200
    assert any("end-of-request flush failed" in r.getMessage() for r in caplog.records)


def test_requests_that_queue_nothing_do_not_flush(configure_outlit, monkeypatch):
    configure_outlit(FLUSH_ON_REQUEST_FINISHED=True)
    calls: list[Any] = []
    client = get_client()
    with monkeypatch.context() as patch:
        patch.setattr(client, "flush", lambda timeout=None: calls.append(timeout))
        assert Client().get("/quiet/").status_code == 200
        assert calls == []
        track(Client())
        assert calls == [2.0]  # REQUEST_FLUSH_TIMEOUT's default


def test_the_request_finished_receiver_is_connected_only_while_the_flush_is_on(
    configure_outlit,
):
    from django.core.signals import request_finished

    def connected() -> bool:
        # Each entry starts with its lookup key: (dispatch_uid, sender id).
        return any(entry[0][0] == "outlit_django.flush" for entry in request_finished.receivers)

    configure_outlit(FLUSH_ON_REQUEST_FINISHED=False)
    assert not connected()  # it would cost every request a call
    configure_outlit(FLUSH_ON_REQUEST_FINISHED=True)
    assert connected()
    configure_outlit()
    assert not connected()


def test_the_cores_signals_count_delivered_and_failed_batches(configure_outlit, collector):
    configure_outlit(API_HOST=collector.url, TRANSPORT=None, RETRY=FAST_RETRY)
    delivered: list[int] = []
    failed: list[Any] = []

    def on_delivered(sender: Any, count: int, status: int, **extra: Any) -> None:
        delivered.append(count)

    def on_failed(sender: Any, count: int, status: int | None, **extra: Any) -> None:
        failed.append(status)

    collector.script(503)
    with (
        signals.batch_delivered.connected_to(on_delivered, sender=get_client()),
        signals.batch_failed.connected_to(on_failed, sender=get_client()),
    ):
        client = Client()
        for n in range(3):
            assert track(client, properties={"n": n}).status_code == 200
        assert outlit.flush(timeout=5)
    assert failed == [503]
    assert delivered == [3]
    assert sorted(e["properties"]["n"] for e in collector.events()) == [0, 1, 2]


def test_the_cores_signals_report_dropped_events(configure_outlit, collector):
    configure_outlit(API_HOST=collector.url, TRANSPORT=None)
    dropped: list[tuple[int, str]] = []

    def on_dropped(sender: Any, count: int, reason: str, **extra: Any) -> None:
        dropped.append((count, reason))

    collector.status = 401  # a bad key: the events can never be delivered
    with signals.events_dropped.connected_to(on_dropped, sender=get_client()):
        track(Client())
        assert outlit.flush(timeout=5)
    assert dropped == [(1, "invalid_key")]
