"""Batching and delivery: what the background worker does with each answer of the service,
what ``flush()`` promises, the counters, the signals and the log lines a user sees."""

from __future__ import annotations

import asyncio
import decimal
import email.utils
import fractions
import gc
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from typing import Any

import pytest

from outlit import (
    MAX_BODY_BYTES,
    FlushResult,
    MockTransport,
    Outlit,
    Request,
    Response,
    RetryPolicy,
    TransportError,
    signals,
)
from outlit._queue import FlushMarker
from outlit._retry import server_delay

try:
    from ._helpers import FAST_RETRY, ClientFactory, Clock, Gate, client_factory, ok, strict_json
except ImportError:
    from _helpers import FAST_RETRY, ClientFactory, Clock, Gate, client_factory, ok, strict_json


@pytest.fixture
def clients() -> Iterator[ClientFactory]:
    with client_factory() as factory:
        yield factory


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="outlit")
    return caplog


def records(caplog: pytest.LogCaptureFixture, level: int, exact: bool = False) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "outlit" and (r.levelno == level if exact else r.levelno >= level)
    ]


def names(request: Request) -> list[str]:
    return [event["eventName"] for event in strict_json(request.body)["events"]]


def track_many(client: Outlit, count: int, prefix: str = "e", **extra: Any) -> None:
    for i in range(count):
        client.track(event_name=f"{prefix}{i}", user_id=f"u{i}", **extra)


def wait_until(condition: Any, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return bool(condition())


class Receiver:
    """A blinker receiver that records the keyword arguments of every send."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, dict[str, Any]]] = []
        self.threads: set[threading.Thread] = set()

    def __call__(self, sender: Any, **kwargs: Any) -> None:
        self.calls.append((sender, kwargs))
        self.threads.add(threading.current_thread())

    @property
    def kwargs(self) -> list[dict[str, Any]]:
        return [kwargs for _, kwargs in self.calls]


def fail_first(n: int, failure: Any) -> Any:
    """A handler whose first ``n`` requests fail with ``failure`` (an exception or a Response)."""
    seen = [0]

    def handler(request: Request) -> Response:
        seen[0] += 1
        if seen[0] <= n:
            if isinstance(failure, BaseException):
                raise failure
            return failure
        return ok(request)

    return handler


# -- batching -------------------------------------------------------------------------------


def test_batches_hold_at_most_max_batch_size_events_in_order(clients):
    client, transport = clients(max_batch_size=7)
    track_many(client, 30)
    assert client.flush(timeout=5)
    assert [len(r.json()["events"]) for r in transport.requests] == [7, 7, 7, 7, 2]
    assert [n for r in transport.requests for n in names(r)] == [f"e{i}" for i in range(30)]


def test_a_full_batch_is_sent_without_waiting_for_the_interval(clients):
    client, transport = clients(max_batch_size=5, flush_interval=60)
    track_many(client, 5)
    assert wait_until(lambda: len(transport.requests) == 1)
    assert len(transport.requests[0].json()["events"]) == 5


def test_queued_events_go_out_by_themselves_after_flush_interval(clients):
    client, transport = clients(flush_interval=0.05)
    client.track(event_name="e", email="a@x.com")
    assert wait_until(lambda: len(transport.requests) == 1)
    assert client.queue_size == 0


def test_steady_load_across_interval_ticks_keeps_batches_full(clients):
    # A tick sends what was waiting at that moment, then only full batches. A drain that
    # chased the queue to empty would, with requests taking a few milliseconds, find new
    # events after every request and send small ones back to back (up to the 100 per second
    # pacing) for as long as events keep arriving: a cost the app pays on its GIL.
    def slow(request: Request) -> Response:
        time.sleep(0.005)
        return ok(request)

    client, transport = clients(slow, flush_interval=0.1)
    stop = time.monotonic() + 1.0
    tracked = 0
    while time.monotonic() < stop:
        client.track(event_name=f"e{tracked}", user_id="u1")
        tracked += 1
        time.sleep(0.0005)  # a steady ~1,000 to 2,000 events per second
    sizes = [len(r.json()["events"]) for r in list(transport.requests)]
    ticks = 11  # at most, in 1 s of 0.1 s intervals
    assert len(sizes) <= tracked // 100 + ticks + 2, (tracked, sizes)
    assert client.flush(timeout=5)
    sent = [n for r in transport.requests for n in names(r)]
    assert sent == [f"e{i}" for i in range(tracked)]


def test_bodies_stay_under_one_megabyte_by_splitting(clients):
    client, transport = clients()
    blob = "x" * 50_000
    track_many(client, 45, properties={"blob": blob})
    assert client.flush(timeout=10)
    sizes = [len(r.body) for r in transport.requests]
    assert all(size <= MAX_BODY_BYTES for size in sizes), sizes
    assert len(sizes) == 3, sizes  # packed close to the limit, not one request per event
    delivered = [n for r in transport.requests for n in names(r)]
    assert delivered == [f"e{i}" for i in range(45)]


def test_an_event_over_one_megabyte_is_dropped_and_the_others_delivered(clients, log):
    dropped = Receiver()
    client, transport = clients()
    with signals.events_dropped.connected_to(dropped, sender=client):
        client.track(event_name="small1", email="a@x.com")
        client.track(event_name="huge", email="a@x.com", properties={"blob": "x" * 1_100_000})
        client.track(event_name="small2", email="a@x.com")
        assert client.flush(timeout=5)
    assert [n for r in transport.requests for n in names(r)] == ["small1", "small2"]
    stats = client.stats
    assert stats.dropped_by_reason == {"too_large": 1}
    assert stats.delivered == 2
    assert [kw["reason"] for kw in dropped.kwargs] == ["too_large"]
    assert dropped.kwargs[0]["count"] == 1
    assert any("huge" in m for m in records(log, logging.ERROR))


# -- transient failures --------------------------------------------------------------------

TRANSIENT = {
    "network-error": TransportError("connection refused"),
    "transport-bug": RuntimeError("a custom transport's bug"),
    "http-500": Response(500, {}, b"oops"),
    "http-502": Response(502),
    "http-503": Response(503, {"retry-after": "0.01"}),
    "http-408": Response(408),
    "http-429-retry-after": Response(429, {"retry-after": "0.01"}, b'{"message":"slow down"}'),
    "http-501": Response(501),
    "http-507": Response(507),
    "http-520-from-a-proxy": Response(520, {}, b"<html>origin error</html>"),
    "http-524-from-a-proxy": Response(524),
    "http-301-wrong-host": Response(301, {"location": "https://app.outlit.ai/api/i/v1/x"}),
    "http-308-wrong-host": Response(308, {"location": "https://elsewhere.example/"}),
}


@pytest.mark.parametrize("failure", list(TRANSIENT.values()), ids=list(TRANSIENT))
def test_transient_failures_are_retried_with_the_same_bytes_and_nothing_lost(clients, failure):
    client, transport = clients(fail_first(2, failure))
    track_many(client, 12)
    assert client.flush(timeout=2)
    bodies = [r.body for r in transport.requests]
    assert len(bodies) == 3
    assert bodies[0] == bodies[1] == bodies[2]  # same events, same uuids, same bytes
    events = strict_json(bodies[-1])["events"]
    assert [e["eventName"] for e in events] == [f"e{i}" for i in range(12)]
    assert len({e["uuid"] for e in events}) == 12
    stats = client.stats
    assert (stats.delivered, stats.retries, stats.failed_requests, stats.requests) == (12, 2, 2, 3)
    assert stats.dropped == 0


def test_events_tracked_during_an_outage_are_delivered_once_afterwards(clients):
    down = threading.Event()
    down.set()
    accepted: list[Request] = []

    def handler(request):
        if down.is_set():
            raise TransportError("down")
        accepted.append(request)
        return ok(request)

    client, transport = clients(handler, max_batch_size=10)
    track_many(client, 15, prefix="early")
    assert not client.flush(timeout=0.2)
    track_many(client, 15, prefix="late")
    down.clear()
    assert client.flush(timeout=5)
    delivered = Counter(e["uuid"] for r in accepted for e in strict_json(r.body)["events"])
    assert client.stats.delivered == 30
    assert len(delivered) == 30
    assert set(delivered.values()) == {1}
    # every uuid ever attempted is among the delivered ones: a retry never mints new ids
    attempted = {e["uuid"] for r in transport.requests for e in strict_json(r.body)["events"]}
    assert attempted == set(delivered)
    order = [n for r in accepted for n in names(r)]
    assert order == [f"early{i}" for i in range(15)] + [f"late{i}" for i in range(15)]


def test_a_redirect_is_retried_and_the_warning_names_where_it_points(clients, log):
    location = "https://app.outlit.ai/api/i/v1/pk_test/events"
    client, _ = clients(fail_first(1, Response(301, {"location": location})))
    client.track(event_name="e", email="a@x.com")
    assert client.flush(timeout=2)
    assert client.stats.dropped == 0
    warning = " ".join(records(log, logging.WARNING))
    assert location in warning
    assert "api_host" in warning


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_a_retry_after_that_is_not_a_finite_number_is_ignored(value):
    assert server_delay(503, {"retry-after": value}, cap=60.0) is None
    assert server_delay(429, {"x-ratelimit-reset": value}, cap=60.0) is None


def test_a_retry_after_of_nan_falls_back_to_the_policy_backoff(clients):
    clock = Clock(lambda request, n: Response(503, {"retry-after": "nan"}))
    policy = RetryPolicy(initial_backoff=0.2, max_backoff=0.4)
    client, _ = clients(clock, retry=policy)
    client.track(event_name="e", email="a@x.com")
    client.flush(timeout=0.01)  # the first attempt; the retries come by themselves
    time.sleep(0.6)
    # The policy's backoff (0 to 0.2 s, then 0 to 0.4 s, ...: about 4 requests), not a retry
    # at the pacing limit (100 requests per second: about 60 in this time).
    assert len(clock.times) in range(1, 21), len(clock.times)


def test_a_retry_after_of_zero_retries_at_once(clients):
    client, transport = clients(fail_first(1, Response(503, {"retry-after": "0"})))
    client.track(event_name="e", email="a@x.com")
    started = time.monotonic()
    result = client.flush(timeout=2)
    assert result, f"flush stalled: {result} after {time.monotonic() - started:.2f} s"
    assert len(transport.requests) == 2


def test_a_rate_limit_reset_already_past_retries_at_once(clients):
    # e.g. the service's clock is a little behind ours
    past = str(int(time.time()) - 5)
    client, transport = clients(fail_first(1, Response(429, {"x-ratelimit-reset": past})))
    client.track(event_name="e", email="a@x.com")
    assert client.flush(timeout=2)
    assert len(transport.requests) == 2


def test_retry_after_from_the_service_is_honoured(clients):
    clock = Clock(
        lambda request, n: Response(429, {"retry-after": "0.3"}) if n == 1 else ok(request)
    )
    client, _ = clients(clock)
    client.track(event_name="e", email="a@x.com")
    assert client.flush(timeout=5)
    assert len(clock.times) == 2
    assert clock.gaps()[0] >= 0.28  # not the policy's 0.05 s backoff


def test_retry_after_is_capped_by_the_policy(clients):
    clock = Clock(
        lambda request, n: Response(503, {"retry-after": "3600"}) if n == 1 else ok(request)
    )
    policy = RetryPolicy(initial_backoff=0.01, max_backoff=0.05, max_retry_after=0.1)
    client, _ = clients(clock, retry=policy)
    client.track(event_name="e", email="a@x.com")
    started = time.monotonic()
    assert client.flush(timeout=5)
    assert time.monotonic() - started < 1.0
    assert len(clock.times) == 2


def test_rate_limit_headers_delay_the_next_request(clients):
    def answer(request, n):
        if n == 1:
            reset = f"{time.time() + 0.3:.3f}"
            return Response(200, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset})
        return ok(request)

    clock = Clock(answer)
    client, _ = clients(clock, max_batch_size=1)
    track_many(client, 2)
    assert client.flush(timeout=5)
    assert len(clock.times) == 2
    assert clock.gaps()[0] >= 0.25
    assert client.stats.delivered == 2


def test_requests_are_spaced_by_max_requests_per_second(clients):
    clock = Clock()
    client, _ = clients(clock, max_batch_size=1, max_requests_per_second=20)
    track_many(client, 5)
    assert client.flush(timeout=5)
    assert len(clock.times) == 5
    assert min(clock.gaps()) >= 0.045, clock.gaps()


def test_a_failing_service_logs_one_warning_not_one_per_retry(clients, log):
    client, _ = clients(fail_first(5, Response(503)))
    track_many(client, 3)
    assert client.flush(timeout=5)
    warnings = records(log, logging.WARNING, exact=True)
    assert len(warnings) == 1, warnings
    assert "503" in warnings[0]
    assert not records(log, logging.ERROR)
    assert any("recovered" in m for m in records(log, logging.INFO, exact=True))


def test_a_refusal_after_failures_is_not_called_a_recovery(clients, log):
    answers = iter([Response(503), Response(400, {}, b'{"message":"bad event"}')])
    client, _ = clients(lambda request: next(answers, None) or ok(request))
    client.track(event_name="e", email="a@x.com")
    assert client.flush(timeout=5)
    assert client.stats.dropped_by_reason == {"rejected": 1}
    assert not any("recovered" in m for m in records(log, logging.INFO))


@pytest.mark.parametrize(
    ("headers", "status", "low", "high"),
    [
        ({"retry-after": "2"}, 429, 2.0, 2.0),
        ({"retry-after": " 1.5 "}, 503, 1.5, 1.5),
        ({"retry-after": "-5"}, 429, 0.0, 0.0),
        ({"retry-after": "9999"}, 429, 60.0, 60.0),
        ({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "{soon}"}, 200, 2.0, 3.1),
        ({"x-ratelimit-reset": "{soon}"}, 429, 2.0, 3.1),
    ],
)
def test_server_asked_delay_is_read_from_the_headers(headers, status, low, high):
    soon = str(int(time.time()) + 3)
    headers = {k: v.format(soon=soon) for k, v in headers.items()}
    delay = server_delay(status, headers, cap=60.0)
    assert delay is not None
    assert low <= delay <= high


def test_retry_after_as_an_http_date_is_understood():
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    delay = server_delay(503, {"retry-after": when}, cap=300.0)
    assert delay is not None
    assert 25 <= delay <= 31


@pytest.mark.parametrize(
    "headers",
    [{}, {"retry-after": "soon"}, {"x-ratelimit-remaining": "5", "x-ratelimit-reset": "1"}],
)
def test_no_usable_delay_header_means_the_policy_decides(headers):
    assert server_delay(503, headers, cap=60.0) is None


# -- partial and definitive rejections -----------------------------------------------------


def test_207_drops_only_the_listed_events_and_is_not_resent(clients, log):
    def handler(request):
        body = (
            b'{"success":false,"processed":3,"errors":[{"index":1,"message":"bad name"},'
            b'{"index":3,"message":"bad props"}]}'
        )
        return Response(207, {}, body)

    delivered, dropped = Receiver(), Receiver()
    client, transport = clients(handler)
    with (
        signals.batch_delivered.connected_to(delivered, sender=client),
        signals.events_dropped.connected_to(dropped, sender=client),
    ):
        track_many(client, 5)
        assert client.flush(timeout=5)
    assert len(transport.requests) == 1
    stats = client.stats
    assert stats.delivered == 3
    assert stats.dropped_by_reason == {"rejected": 2}
    assert delivered.kwargs == [{"count": 3, "status": 207}]
    assert [(kw["count"], kw["reason"]) for kw in dropped.kwargs] == [(2, "rejected")]
    assert any("bad name" in m for m in dropped.kwargs[0]["messages"])
    error = " ".join(records(log, logging.ERROR, exact=True))  # a rejected event is an ERROR
    assert "events[1]" in error
    assert "bad props" in error


def test_207_errors_naming_events_by_path_and_twice_reject_each_event_once(clients):
    # The OpenAPI description's validation issues name an event by path ["events", i, field].
    def handler(request):
        body = (
            b'{"success":false,"processed":3,"errors":['
            b'{"path":["events",1,"eventName"],"message":"required"},'
            b'{"path":["events",1,"timestamp"],"message":"not a number"},'
            b'{"index":3,"message":"bad props"},{"path":["source"],"message":"ignored"},'
            b'{"index":9,"message":"out of range"},"junk"]}'
        )
        return Response(207, {}, body)

    dropped = Receiver()
    client, transport = clients(handler)
    with signals.events_dropped.connected_to(dropped, sender=client):
        track_many(client, 5)
        assert client.flush(timeout=5)
    assert len(transport.requests) == 1
    stats = client.stats
    assert (stats.delivered, stats.dropped_by_reason) == (3, {"rejected": 2})
    assert dropped.kwargs[0]["messages"] == [
        "events[1]: eventName: required; timestamp: not a number",
        "events[3]: bad props",
    ]


@pytest.mark.parametrize("status", [400, 413])
@pytest.mark.parametrize("poison_at", [0, 5, 7])
def test_one_rejected_event_is_isolated_and_the_rest_delivered_once(clients, status, poison_at):
    def handler(request):
        if "poison" in names(request):
            return Response(status, {}, b'{"success":false,"message":"invalid event"}')
        return ok(request)

    dropped, failed = Receiver(), Receiver()
    client, transport = clients(handler)
    with (
        signals.events_dropped.connected_to(dropped, sender=client),
        signals.batch_failed.connected_to(failed, sender=client),
    ):
        for i in range(8):
            if i == poison_at:
                client.track(event_name="poison", email="p@x.com")
            else:
                client.track(event_name=f"good{i}", email="a@x.com")
        assert client.flush(timeout=5)
    accepted = [n for r in transport.requests if "poison" not in names(r) for n in names(r)]
    assert sorted(accepted) == sorted(f"good{i}" for i in range(8) if i != poison_at)
    assert len(accepted) == 7  # each exactly once
    assert len(transport.requests) <= 7  # halving: at most 2 * log2(8) + 1 requests
    stats = client.stats
    assert stats.delivered == 7
    assert stats.dropped_by_reason == {"rejected": 1}
    assert [(kw["count"], kw["reason"]) for kw in dropped.kwargs] == [(1, "rejected")]
    # Every failed request is said, the splitting ones too (sent again at once, in halves):
    # the signal and the counter agree.
    assert len(failed.kwargs) == stats.failed_requests
    assert [kw["retry_in"] for kw in failed.kwargs] == [0.0] * (len(failed.kwargs) - 1) + [None]
    assert all(kw["status"] == status for kw in failed.kwargs)


def test_a_split_interrupted_by_a_transient_failure_is_not_started_over(clients):
    # An endpoint (a proxy, say) refuses bodies over 3 events and fails every fifth request.
    # Before, the retry took the whole batch again and restarted the split, which never got
    # down to 3 events between two failures: thousands of requests, nothing delivered.
    answered, delivered = [0], Counter[str]()

    def handler(request):
        answered[0] += 1
        if answered[0] % 5 == 1:
            return Response(503, {}, b"")
        if len(names(request)) > 3:
            return Response(413, {}, b'{"message":"too large"}')
        delivered.update(names(request))
        return ok(request)

    client, transport = clients(handler, max_requests_per_second=1000)
    for i in range(100):
        client.track(event_name=f"e{i}", email="a@x.com")
    assert client.flush(timeout=10).settled
    assert delivered == Counter(f"e{i}" for i in range(100))  # each once
    assert len(transport.requests) < 200


def test_two_rejected_events_among_many_are_both_isolated(clients):
    def handler(request):
        if {"poison"} & set(names(request)):
            return Response(400, {}, b'{"message":"bad"}')
        return ok(request)

    client, transport = clients(handler)
    for i in range(20):
        name = "poison" if i in (3, 16) else f"good{i}"
        client.track(event_name=name, email="a@x.com")
    assert client.flush(timeout=5)
    accepted = Counter(n for r in transport.requests if "poison" not in names(r) for n in names(r))
    assert set(accepted.values()) == {1}
    assert len(accepted) == 18
    assert client.stats.dropped_by_reason == {"rejected": 2}


@pytest.mark.parametrize(
    ("key", "shown"), [("pk_live_abcdef123", "pk_live… at"), ("pk_...", "pk_... at")]
)
def test_a_refused_key_is_named_masked_in_the_log(clients, log, key, shown):
    client, _ = clients(lambda request: 401, public_key=key)
    client.track(event_name="signup", email="a@x.com")
    assert client.flush(timeout=5)
    (error,) = records(log, logging.ERROR)
    assert f"refused public key {shown} " in error  # one ellipsis, or none for a short key
    assert "abcdef" not in error


@pytest.mark.parametrize("status", [401, 403, 404])
def test_a_refused_key_stops_sending_says_so_once_and_keeps_memory_bounded(clients, log, status):
    failed = Receiver()

    def handler(request):
        body = b'{"success":false,"message":"Invalid or inactive tracking configuration"}'
        return Response(status, {}, body)

    client, transport = clients(handler, max_queue_size=20, max_batch_size=10)
    with signals.batch_failed.connected_to(failed, sender=client):
        track_many(client, 5)
        assert client.flush(timeout=5)  # settled: given up for good, not pending
        errors = records(log, logging.ERROR)
        assert len(errors) == 1, errors
        assert str(status) in errors[0]
        assert "Invalid or inactive" in errors[0]
        highest = 0
        for i in range(200):
            client.track(event_name=f"later{i}", email="a@x.com")
            highest = max(highest, client.queue_size)
        assert highest <= 20
        assert client.flush(timeout=5)
    assert client.queue_size == 0
    assert len(transport.requests) == 1
    assert len(records(log, logging.ERROR)) == 1
    stats = client.stats
    assert stats.delivered == 0
    by_reason = stats.dropped_by_reason
    assert by_reason["invalid_key"] + by_reason.get("queue_full", 0) == 205
    assert failed.kwargs[0]["status"] == status
    assert failed.kwargs[0]["retry_in"] is None


# -- the queue --------------------------------------------------------------------------------


def test_full_queue_drops_new_events_counts_them_and_warns_once_per_burst(clients, log):
    dropped = Receiver()
    client, transport = clients(max_queue_size=5)
    with signals.events_dropped.connected_to(dropped, sender=client):
        track_many(client, 30, prefix="burst1-")
        assert client.queue_size == 5
        full_warnings = [m for m in records(log, logging.WARNING) if "queue full" in m]
        assert len(full_warnings) == 1
        assert client.flush(timeout=5)
        track_many(client, 30, prefix="burst2-")
        assert client.flush(timeout=5)
    full_warnings = [m for m in records(log, logging.WARNING) if "queue full" in m]
    assert len(full_warnings) == 2
    delivered = [n for r in transport.requests for n in names(r)]
    assert delivered == [f"burst1-{i}" for i in range(5)] + [f"burst2-{i}" for i in range(5)]
    assert client.stats.dropped_by_reason == {"queue_full": 50}
    # Signalled by the worker, in a signal or a few per burst: never on the caller's thread.
    assert sum(kw["count"] for kw in dropped.kwargs) == 50
    assert all(kw["reason"] == "queue_full" and kw["messages"] == [] for kw in dropped.kwargs)
    assert dropped.threads == {client._worker.thread}


@pytest.mark.parametrize("wait", ["flush", "aflush"])
def test_a_flush_returns_once_the_drops_callers_counted_are_signalled(clients, wait):
    # Nothing queued, one call dropped for its identity: the flush must not return at once
    # (the drop would be signalled up to flush_interval later), nor signal on its own thread.
    dropped = Receiver()
    client, _ = clients(flush_interval=60)
    client.track(event_name="warm_up", email="a@x.com")
    assert client.flush(timeout=5)

    def broken_identity() -> dict[str, str]:
        raise LookupError("session store down")

    with signals.events_dropped.connected_to(dropped, sender=client):
        client.bind(broken_identity).track(event_name="report_exported")
        assert client.queue_size == 0
        if wait == "flush":
            assert client.flush(timeout=5)
        else:
            assert asyncio.run(client.aflush(timeout=5))
        assert [(kw["count"], kw["reason"]) for kw in dropped.kwargs] == [(1, "identity_failed")]
    assert dropped.threads == {client._worker.thread}


def test_queue_full_drops_are_signalled_within_the_flush_interval_during_a_long_backoff(clients):
    # The backoff after a failure can last 30 s, past the flush interval that the README gives
    # as the latest time a queue_full drop is signalled.
    dropped = Receiver()
    client, _ = clients(
        # Retry-After, not the policy's backoff, whose full jitter may make it short.
        lambda request: Response(503, {"retry-after": "30"}),
        max_queue_size=2,
        flush_interval=0.2,
        retry=RetryPolicy(initial_backoff=30.0, max_backoff=30.0, max_retry_after=60.0),
    )
    with signals.events_dropped.connected_to(dropped, sender=client):
        track_many(client, 2)
        assert not client.flush(timeout=2.0)  # failed once: backing off for about 30 s
        assert client.stats.requests == 1
        track_many(client, 3)  # the queue holds 2: these 3 are dropped
        assert client.stats.dropped_by_reason == {"queue_full": 3}
        deadline = time.monotonic() + 3.0
        while not dropped.kwargs and time.monotonic() < deadline:
            time.sleep(0.02)
    assert [(kw["count"], kw["reason"]) for kw in dropped.kwargs] == [(3, "queue_full")]
    assert dropped.threads == {client._worker.thread}


def test_queue_size_counts_events_waiting_to_be_sent(clients):
    client, _ = clients()
    assert client.queue_size == 0
    track_many(client, 3)
    assert client.queue_size == 3
    assert client.flush(timeout=5)
    assert client.queue_size == 0


def test_stats_add_up_across_deliveries_and_drops(clients):
    first = [True]

    def handler(request):
        if first[0]:
            first[0] = False
            return Response(207, {}, b'{"processed":3,"errors":[{"index":0,"message":"no"}]}')
        return ok(request)

    client, _ = clients(handler, max_queue_size=5)
    client.track(event_name="a", email="a@x.com")
    client.track(event_name="big", email="a@x.com", properties={"b": "x" * 1_100_000})
    track_many(client, 6)  # 3 fit, 3 are dropped because the queue is full
    stats = client.stats
    assert (stats.enqueued, stats.queued, stats.delivered) == (5, 5, 0)
    assert stats.dropped_by_reason == {"queue_full": 3}
    assert client.flush(timeout=5)
    track_many(client, 2)
    assert client.flush(timeout=5)
    stats = client.stats
    assert stats.dropped_by_reason == {"queue_full": 3, "too_large": 1, "rejected": 1}
    assert stats.dropped == 5
    assert stats.delivered == 3 + 2
    assert stats.queued == 0
    assert stats.enqueued == 7  # accepted calls
    assert stats.enqueued == stats.delivered + stats.dropped - 3 + stats.queued
    assert stats.requests == 2


def test_stats_seen_from_a_delivery_signal_count_each_event_once(clients):
    seen: list[Any] = []
    client, _ = clients()

    def receiver(sender, **kwargs):
        seen.append((sender.stats, sender.queue_size))

    with signals.batch_delivered.connected_to(receiver, sender=client):
        track_many(client, 3)
        assert client.flush(timeout=5)
    ((stats, queue_size),) = seen
    assert stats.delivered == 3
    assert queue_size == 0, "delivered events are still reported as queued"
    assert stats.enqueued == 3, stats


# -- flush -----------------------------------------------------------------------------------


def test_flush_returns_a_truthy_result_once_everything_is_delivered(clients):
    client, transport = clients()
    track_many(client, 3)
    result = client.flush(timeout=5)
    assert result
    assert result.pending == 0
    assert len(transport.events) == 3


def test_flush_with_nothing_queued_returns_at_once(clients):
    client, transport = clients()
    started = time.monotonic()
    assert client.flush(timeout=5)
    client.track(event_name="e", email="a@x.com")
    assert client.flush(timeout=5)
    assert client.flush(timeout=5)
    assert time.monotonic() - started < 1.0
    assert len(transport.requests) == 1


def test_flush_gives_up_after_its_timeout_when_the_service_stays_down(clients, log):
    def down(request):
        raise TransportError("connection refused")

    client, _ = clients(down)
    track_many(client, 5)
    started = time.monotonic()
    result = client.flush(timeout=0.3)
    elapsed = time.monotonic() - started
    assert not result
    assert result.pending == 5
    assert 0.25 <= elapsed < 0.3 + 0.5
    assert client.queue_size == 5  # still queued, not lost
    assert any("flush gave up" in m for m in records(log, logging.WARNING))


def test_flushes_giving_up_in_a_row_are_said_once_then_every_tenth(clients, log):
    outage = [True]

    def sometimes_down(request):
        if outage[0]:
            raise TransportError("connection refused")
        return ok(request)

    client, _ = clients(sometimes_down, retry=RetryPolicy(initial_backoff=0.01, max_backoff=0.01))
    track_many(client, 2)
    for _ in range(25):
        assert not client.flush(timeout=0.01)
    said = [m for m in records(log, logging.WARNING) if "flush gave up" in m]
    assert len(said) == 3, said  # the 1st, the 11th and the 21st
    assert said[1].endswith("; 11 flushes in a row gave up")
    outage[0] = False
    assert client.flush(timeout=5)  # settled: the next outage is said again from its start
    outage[0] = True
    track_many(client, 1)
    assert not client.flush(timeout=0.01)
    said = [m for m in records(log, logging.WARNING) if "flush gave up" in m]
    assert len(said) == 4 and "in a row" not in said[3]


def test_flushes_that_time_out_leave_nothing_behind_and_never_take_an_events_place(clients):
    # Serverless code flushes once per invocation: during an outage every flush times out.
    def down(request):
        raise TransportError("connection refused")

    client, _ = clients(down, max_queue_size=10)
    for i in range(30):
        client.track(event_name=f"e{i}", email="a@x.com")
        client.flush(timeout=0.001)
    queue = client._worker.queue
    assert queue.markers == 0
    assert not [item for item in queue if type(item).__name__ == "FlushMarker"]
    stats = client.stats
    # Capped at 10 waiting; a batch in flight is not counted until it comes back failed.
    assert stats.queued >= 10
    assert stats.queued + stats.dropped_by_reason["queue_full"] == 30


def test_a_flush_marker_does_not_count_against_the_queue_cap(clients):
    gate = Gate()
    client, _ = clients(gate.answer_ok, max_queue_size=3, max_batch_size=1)
    client.track(event_name="held", email="a@x.com")  # taken by the worker, hangs in flight
    assert wait_until(lambda: client._worker.inflight == 1)
    for i in range(2):
        client.track(event_name=f"e{i}", email="a@x.com")
    waiter = threading.Thread(target=client.flush, kwargs={"timeout": 5})
    waiter.start()
    assert wait_until(lambda: client._worker.queue.markers == 1)
    assert len(client._worker.queue) == 3  # two events and the marker
    client.track(event_name="third", email="a@x.com")  # two events waiting: it has a place
    assert client.stats.dropped_by_reason == {}
    client.track(event_name="over", email="a@x.com")  # three events waiting: refused
    assert client.stats.dropped_by_reason == {"queue_full": 1}
    gate.release.set()
    waiter.join(5)
    assert client.flush(timeout=5)
    assert client.stats.delivered == 4


def test_flushes_during_an_outage_do_not_send_more_than_one_request_per_initial_backoff(
    clients,
):
    clock = Clock(lambda request, n: Response(503))
    policy = RetryPolicy(initial_backoff=0.2, max_backoff=30.0)
    client, _ = clients(clock, retry=policy)
    client.track(event_name="e", email="a@x.com")
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        client.flush(timeout=0.01)
    # Without flush() the backoff would grow to seconds; flushes cut it, but never to less
    # than 0.2 s after a failure. A jittered backoff may be shorter on its own (the first two
    # average 0.1 and 0.15 s), so about 7 requests; cutting it to nothing would send one per
    # flush, at the pacing limit: about 100.
    assert len(clock.times) in range(2, 16), clock.gaps()


@pytest.mark.parametrize(
    "timeout", [float("inf"), 1e12, 10**400, decimal.Decimal("5"), fractions.Fraction(5, 1)]
)
def test_a_flush_may_wait_as_long_as_it_likes(clients, timeout):
    client, _ = clients()
    client.track(event_name="e", email="a@x.com")
    assert client.flush(timeout=timeout)
    client.track(event_name="e", email="a@x.com")
    assert client.shutdown(timeout=timeout)


@pytest.mark.parametrize("timeout", [-(10**400), -1.0])
def test_a_negative_flush_timeout_means_do_not_wait(clients, timeout):
    gate = Gate()
    client, _ = clients(gate.answer_ok)
    client.track(event_name="e", email="a@x.com")
    result = client.flush(timeout=timeout)
    assert not result and result.pending == 1
    gate.release.set()
    assert client.flush(timeout=5)


@pytest.mark.parametrize("timeout", [float("nan"), decimal.Decimal("NaN"), "5", True, [1]])
def test_a_flush_timeout_that_is_not_a_number_is_refused_by_name(clients, timeout):
    client, _ = clients()
    client.track(event_name="e", email="a@x.com")
    with pytest.raises(ValueError, match="timeout"):
        client.flush(timeout=timeout)
    with pytest.raises(ValueError, match="timeout"):
        client.shutdown(timeout=timeout)
    client.track(event_name="after", email="a@x.com")  # still open: nothing was closed
    assert client.flush(timeout=5)
    assert client.stats.delivered == 2


def test_flush_returns_on_time_when_a_request_hangs(clients):
    gate = Gate()
    client, _ = clients(gate.answer_ok)
    client.track(event_name="e", email="a@x.com")
    started = time.monotonic()
    result = client.flush(timeout=0.2)
    assert time.monotonic() - started < 0.2 + 0.5
    assert not result
    assert result.pending == 1
    gate.release.set()
    assert client.flush(timeout=5)


def test_flush_waits_only_for_events_queued_before_the_call(clients):
    first, second = Gate(), Gate()

    def handler(request):
        (name,) = names(request)
        (first if name == "before" else second).hold()
        return ok(request)

    client, transport = clients(handler, max_batch_size=1)
    client.track(event_name="before", email="a@x.com")
    results: list[Any] = []
    flusher = threading.Thread(target=lambda: results.append(client.flush(timeout=5)))
    flusher.start()
    assert first.arrived.wait(5)
    # The worker may have taken "before" on its own (a full batch) before the flush placed its
    # marker: "after" must come behind the marker.
    deadline = time.monotonic() + 5
    while client._worker.queue.markers == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert client._worker.queue.markers == 1
    client.track(event_name="after", email="a@x.com")  # queued while the flush is running
    first.release.set()
    flusher.join(5)
    assert not flusher.is_alive()
    assert results[0]  # settled although "after" is still held by the transport
    assert second.arrived.wait(5)
    assert client.queue_size == 1
    second.release.set()
    assert client.flush(timeout=5)
    assert [n for r in transport.requests for n in names(r)] == ["before", "after"]


def test_shutdown_with_the_service_down_returns_in_time_and_reports_the_loss(clients, log):
    dropped = Receiver()

    def down(request):
        raise TransportError("connection refused")

    client, _ = clients(down)
    with signals.events_dropped.connected_to(dropped, sender=client):
        track_many(client, 4)
        started = time.monotonic()
        result = client.shutdown(timeout=0.2)
        assert time.monotonic() - started < 0.2 + 0.5
    assert not result
    assert result.pending == 4
    assert [(kw["count"], kw["reason"]) for kw in dropped.kwargs] == [(4, "shutdown")]
    assert any("undelivered" in m for m in records(log, logging.WARNING))


def test_a_flush_that_a_shutdown_overtakes_does_not_call_the_dropped_events_settled(clients):
    # The shutdown drops what it cannot deliver and releases every waiting flush's marker:
    # the flush must not take that release for "delivered or rejected".
    def down(request):
        raise TransportError("connection refused")

    client, _ = clients(down)
    track_many(client, 10)
    results = []
    flusher = threading.Thread(target=lambda: results.append(client.flush(timeout=10)))
    flusher.start()
    deadline = time.monotonic() + 5
    while client._worker.queue.markers == 0 and time.monotonic() < deadline:
        time.sleep(0.005)  # until the flush waits
    shut = client.shutdown(timeout=0.3)
    flusher.join(5)
    assert not flusher.is_alive()
    assert client.stats.dropped_by_reason == {"shutdown": 10}
    assert (shut.settled, shut.pending) == (False, 10)
    assert (results[0].settled, results[0].pending) == (False, 10)


def test_an_async_flush_that_a_shutdown_overtakes_reports_the_dropped_events(clients):
    def down(request):
        raise TransportError("connection refused")

    client, _ = clients(down)

    async def main():
        track_many(client, 10)
        waiting = asyncio.ensure_future(client.aflush(timeout=10))
        while client._worker.queue.markers == 0:
            await asyncio.sleep(0.005)
        shut = await client.ashutdown(timeout=0.3)
        return shut, await asyncio.wait_for(waiting, 5)

    shut, result = asyncio.run(main())
    assert client.stats.delivered == 0
    assert not shut
    assert (result.settled, result.pending) == (False, 10)


def test_a_flush_settled_before_a_shutdown_stays_settled(clients):
    # The comparison covers only drops during the flush's own wait.
    client, transport = clients()
    track_many(client, 3)
    assert client.flush(timeout=5) == FlushResult(True, 0)
    assert client.shutdown(timeout=5) == FlushResult(True, 0)
    assert sum(len(r.json()["events"]) for r in transport.requests) == 3


def test_shutdown_while_a_request_hangs_reports_the_undelivered_events(clients, log):
    gate = Gate()

    def hang_then_fail(request):
        gate.hold()
        return Response(503)

    client, _ = clients(hang_then_fail)
    track_many(client, 4)
    try:
        started = time.monotonic()
        result = client.shutdown(timeout=0.2)
        assert time.monotonic() - started < 0.2 + 0.5
        assert not result
        assert result.pending == 4
        undelivered = [m for m in records(log, logging.WARNING) if "undelivered" in m]
        assert undelivered, "shutdown did not say that 4 events were left undelivered"
        assert "4" in undelivered[0]
    finally:
        gate.release.set()


def test_shutdown_counts_the_batch_in_flight_beside_the_queued_events(clients, log):
    gate = Gate()

    def hang_then_fail(request):
        gate.hold()
        return Response(503)

    client, _ = clients(hang_then_fail, max_batch_size=10)
    track_many(client, 10)  # one full batch: taken by the worker, hangs in flight
    assert gate.arrived.wait(5)
    track_many(client, 30)  # still queued
    try:
        result = client.shutdown(timeout=0.2)
        assert (result.settled, result.pending) == (False, 40)
        (said,) = [m for m in records(log, logging.WARNING) if "undelivered" in m]
        assert "shut down with 40 undelivered events (10 in a request still in flight" in said
    finally:
        gate.release.set()


class _SlowToEncode:
    """A property value whose JSON form takes a while (a model's to_dict reading a lazy field)."""

    def __init__(self, started: threading.Event) -> None:
        self.started = started

    def to_dict(self) -> dict[str, int]:
        self.started.set()
        time.sleep(0.3)
        return {"rows": 3}


def test_flush_during_the_encoding_of_a_batch_waits_for_its_delivery(clients):
    # The worker has taken the batch from the queue and is encoding it: the events are in
    # neither the queue nor a request yet, and flush() must not take that for "all sent".
    started = threading.Event()
    client, transport = clients(flush_interval=0.05)
    client.track(event_name="report", email="a@x.com", properties={"r": _SlowToEncode(started)})
    assert started.wait(5)
    result = client.flush(timeout=5)
    assert result.settled
    assert [e["eventName"] for e in transport.events] == ["report"]
    assert transport.events[0]["properties"] == {"r": {"rows": 3}}


class _WaitsForTheAppsLock:
    """A property value whose to_dict() needs a lock of the app's (a model reading a field)."""

    def __init__(self, lock: threading.Lock, started: threading.Event) -> None:
        self.lock, self.started = lock, started

    def to_dict(self) -> dict[str, bool]:
        self.started.set()
        got = self.lock.acquire(timeout=5)  # without the timeout, the old code hung for good
        if got:
            self.lock.release()
        return {"got_the_lock": got}


def test_flush_keeps_its_timeout_while_the_batch_waits_for_a_lock_the_caller_holds(clients):
    # A thread holds an app lock and flushes; the event's to_dict() needs that lock. The
    # worker encodes outside the lock that queue_size takes, so flush() gives up on time
    # (and the event is sent once the lock is free) instead of both waiting on each other.
    app_lock, started = threading.Lock(), threading.Event()
    client, transport = clients(flush_interval=0.05)
    with app_lock:
        client.track(
            event_name="row_exported",
            user_id="u-1",
            properties={"row": _WaitsForTheAppsLock(app_lock, started)},
        )
        assert started.wait(5)
        began = time.monotonic()
        result = client.flush(timeout=0.3)
        took = time.monotonic() - began
        assert client.queue_size == 1 and client.stats.queued == 1  # in flight, counted once
    assert took < 2, f"flush(timeout=0.3) took {took:.1f} s"
    assert (result.settled, result.pending) == (False, 1)
    assert client.flush(timeout=5).settled
    assert [e["properties"] for e in transport.events] == [{"row": {"got_the_lock": True}}]


def test_aflush_does_not_hold_the_event_loop_while_the_app_encodes_slowly(clients):
    started = threading.Event()

    class Slow:
        def to_dict(self) -> dict[str, int]:
            started.set()
            time.sleep(1.0)
            return {"rows": 3}

    client, transport = clients(flush_interval=0.05)
    client.track(event_name="report", user_id="u-1", properties={"r": Slow()})
    assert started.wait(5)

    async def main() -> tuple[float, float]:
        longest, last, done = 0.0, time.monotonic(), False

        async def ticker() -> None:
            nonlocal longest, last
            while not done:
                await asyncio.sleep(0.01)
                now = time.monotonic()
                longest, last = max(longest, now - last), now

        task = asyncio.ensure_future(ticker())
        began = time.monotonic()
        result = await client.aflush(timeout=0.05)
        took = time.monotonic() - began
        done = True
        await task
        assert not result.settled
        return took, longest

    took, longest = asyncio.run(main())
    assert took < 0.5 and longest < 0.5, (took, longest)
    assert client.flush(timeout=5).settled
    assert [e["properties"] for e in transport.events] == [{"r": {"rows": 3}}]


def test_flush_markers_never_make_queue_size_count_too_few(clients, monkeypatch):
    # queue_size is the queue's length less its flush markers, read without a lock: each
    # change to the markers is ordered so that a read in between counts one too many (a flush
    # waits a moment longer), never one too few (a flush could return before its events went).
    client, _ = clients()
    queue = client._worker.queue
    client.track(event_name="waiting", user_id="u-1")  # the worker was never started
    seen: list[int] = []

    def watched(name: str) -> None:
        method = getattr(queue, name)

        def call(*args: Any) -> Any:
            seen.append(queue.events_waiting())
            result = method(*args)
            seen.append(queue.events_waiting())
            return result

        monkeypatch.setattr(queue, name, call)

    for name in ("append", "remove", "popleft"):
        watched(name)
    waiting, taken_back = FlushMarker(), FlushMarker()
    queue.add_marker(waiting)
    queue.add_marker(taken_back)
    queue.cancel_marker(taken_back)
    deque.append(queue, deque.popleft(queue))  # the event behind the marker, unwatched
    queue.release_front_markers()
    assert waiting.done.is_set() and queue[0][0] == "waiting"
    assert seen and min(seen) >= 1, seen


def test_a_batch_put_back_for_a_retry_while_queue_size_reads_is_counted_once(clients, monkeypatch):
    # The worker puts a batch back for a retry (5 more in the queue, 5 fewer in flight) while
    # queue_size reads: the move waits for the read to end, so the read finds the batch in one
    # place, neither in neither (flush() would return at once) nor in both.
    client, _ = clients()
    worker = client._worker
    worker.inflight = 5
    read_queue = worker.queue.events_waiting
    movers: list[threading.Thread] = []

    def move_back() -> None:  # what _deliver does for a retry
        with worker.move_lock:
            worker.queue.requeue([b'{"n":%d}' % n for n in range(5)])
            worker.inflight = 0

    def requeued_during_the_read() -> int:
        if not movers:
            movers.append(threading.Thread(target=move_back))
            movers[0].start()
            movers[0].join(0.2)
            assert movers[0].is_alive(), "the batch moved while queue_size was reading"
        return read_queue()

    monkeypatch.setattr(worker.queue, "events_waiting", requeued_during_the_read)
    assert client.queue_size == 5  # still in flight
    movers[0].join(5)
    assert (worker.queue.events_waiting(), worker.inflight) == (5, 0)
    assert client.queue_size == 5  # back in the queue


def test_a_shutdown_from_a_signal_handler_during_shutdown_does_not_wait_for_itself(clients):
    client, _ = clients()
    track_many(client, 3)
    worker = client._worker
    stop = worker.stop
    inner: list[tuple[float, Any]] = []

    def stop_interrupted_by_a_handler(timeout: float) -> None:
        started = time.monotonic()
        result = client.shutdown(timeout=3)  # as a SIGTERM handler would, on the same thread
        inner.append((time.monotonic() - started, result))
        stop(timeout)

    worker.stop = stop_interrupted_by_a_handler  # type: ignore[method-assign]
    assert client.shutdown(timeout=3)
    ((took, result),) = inner
    assert took < 0.5, f"the handler's shutdown waited {took:.1f} s for the one it interrupted"
    assert result.settled  # everything was already delivered by then


def test_a_shutdown_that_raised_does_not_make_the_next_one_wait(clients):
    class ClosingFails(MockTransport):
        def close(self) -> None:
            raise OSError("close failed")

    client, _ = clients(transport=ClosingFails())
    track_many(client, 1)
    with pytest.raises(OSError):
        client.shutdown(timeout=3)
    started = time.monotonic()
    client.shutdown(timeout=3)
    assert time.monotonic() - started < 0.5


def test_identity_drops_of_a_client_that_never_started_are_signalled_at_shutdown(clients):
    dropped = Receiver()
    client, _ = clients()
    with signals.events_dropped.connected_to(dropped, sender=client):
        client.bind(lambda: ["not", "a", "mapping"]).track(event_name="e")
        client.shutdown()
    assert [(kw["count"], kw["reason"]) for kw in dropped.kwargs] == [(1, "identity_failed")]


def test_identity_drops_are_signalled_by_the_worker_within_the_flush_interval(clients):
    # Every call so far went through a failing identity function: nothing was queued, yet
    # the worker must run to say so (an alert on identity_failed would otherwise stay silent
    # until shutdown).
    seen: list[tuple[str, int, str]] = []

    def receiver(sender: Any, count: int, reason: str, **extra: Any) -> None:
        seen.append((reason, count, threading.current_thread().name))

    client, _ = clients(flush_interval=0.2)
    with signals.events_dropped.connected_to(receiver, sender=client):
        tracker = client.bind(lambda: ["not", "a", "mapping"])
        for _ in range(3):
            tracker.track(event_name="e")
        deadline = time.monotonic() + 5
        while sum(count for _, count, _ in seen) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert {(reason, thread) for reason, _, thread in seen} == {
            ("identity_failed", "outlit-worker")
        }
        assert sum(count for _, count, _ in seen) == 3


def test_a_call_from_a_signal_handler_cannot_hang_the_thread_it_interrupted(clients):
    # A signal handler runs on the main thread between two of its bytecodes, possibly while
    # that thread holds one of the locks a tracking call takes: the handler's own call must
    # then go through, not wait forever for a lock its own thread holds.
    client, _ = clients(max_queue_size=1)
    client.track(event_name="fills_the_queue", email="a@x.com")
    worker = client._worker
    done = threading.Event()

    def interrupted() -> None:
        with worker.counter_lock:
            client.track(event_name="dropped", email="a@x.com")  # counted: queue full
        with worker.queue._marker_lock:
            client.flush(timeout=0.05)  # bounded: the worker waits for this lock meanwhile
        with client._state_lock:
            client.shutdown(timeout=1)
        done.set()

    threading.Thread(target=interrupted, daemon=True).start()
    assert done.wait(5), "a tracking call waited for a lock its own thread held"
    assert client.stats.dropped_by_reason == {"queue_full": 1}
    assert client.stats.delivered == 1


def test_a_burst_of_requests_that_each_flush_is_sent_in_full_batches(clients):
    # Each request of a burst tracks and then waits (a flush after every response): the queue
    # holds event, marker, event, marker... The batches must not be cut at every marker (one
    # request per event, paced at 100 per second, the flushes timing out). The worker is held
    # until the whole burst is queued, so the count does not depend on its wake-ups.
    client, transport = clients()
    client.track(event_name="warm_up", email="a@x.com")
    assert client.flush(timeout=5)  # the worker runs
    worker = client._worker

    async def burst() -> list[Any]:
        async def request(n: int) -> Any:
            client.track(event_name="signed_in", email=f"u{n}@x.com")
            return await client.aflush(timeout=5)

        async def let_the_worker_go() -> None:
            while worker.queue.markers < 250:
                await asyncio.sleep(0.001)
            worker.send_lock.release()

        worker.send_lock.acquire()
        results = await asyncio.gather(let_the_worker_go(), *(request(n) for n in range(250)))
        return results[1:]

    results = asyncio.run(burst())
    assert all(results)
    assert client.stats.delivered == 251
    # 250 events in full batches of 100, after the warm-up's request: one per event before.
    assert [len(r.json()["events"]) for r in transport.requests] == [1, 100, 100, 50]


def test_a_flush_is_never_settled_before_the_events_queued_ahead_of_it(clients):
    # Markers ride behind the batch they were gathered into: after a transient failure of
    # that batch, each flush still waits until the events queued before it are delivered.
    answers = [503]

    def first_fails(request: Any) -> Any:
        return answers.pop() if answers else ok(request)

    client, transport = clients(first_fails)
    seen: dict[str, int] = {}

    def flush_and_note(name: str) -> None:
        assert client.flush(timeout=10)
        seen[name] = client.stats.delivered

    threads = []
    for name in ("a", "b", "c"):
        client.track(event_name=name, email="a@x.com")
        thread = threading.Thread(target=flush_and_note, args=(name,))
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join(10)
    assert seen["a"] >= 1 and seen["b"] >= 2 and seen["c"] >= 3, seen
    delivered = [n for r in transport.requests[1:] for n in names(r)]
    assert sorted(delivered) == ["a", "b", "c"]


def test_a_flush_settles_when_its_own_events_do_though_later_ones_in_the_batch_fail(clients):
    # The flush's marker rides with a batch that also holds later requests' events: a 413
    # splits it, the half with the flush's event is delivered, the other half meets an
    # outage. The flush must settle then, not wait behind the failed half.
    gate = threading.Event()
    delivered: list[str] = []

    def handler(request: Any) -> Any:
        ids = names(request)
        if ids == ["e0"]:
            gate.wait(5)  # holds the worker while the next events queue
        elif len(ids) > 5:
            return Response(413, {}, b'{"message":"payload too large"}')
        elif any(name in ids for name in ("e6", "e7", "e8", "e9", "e10")):
            raise TransportError("connection reset")
        delivered.extend(ids)
        return ok(request)

    client, _ = clients(handler, flush_interval=0.05)
    client.track(event_name="e0", email="a@x.com")
    busy = threading.Thread(target=client.flush, kwargs={"timeout": 5})
    busy.start()
    time.sleep(0.2)
    client.track(event_name="e1", email="a@x.com")  # request A's event, then its flush
    result: dict[str, Any] = {}

    def request_a() -> None:
        started = time.monotonic()
        result["flush"] = client.flush(timeout=3)
        result["took"] = time.monotonic() - started

    a = threading.Thread(target=request_a)
    a.start()
    time.sleep(0.1)
    for n in range(2, 11):  # other requests' events, behind A's marker
        client.track(event_name=f"e{n}", email="a@x.com")
    gate.set()
    a.join(5)
    busy.join(5)
    assert "e1" in delivered
    assert result["flush"].settled, result
    assert result["took"] < 2, result


def test_an_event_dropped_as_too_large_still_counts_as_settled_for_the_flush(clients):
    # The flush's events: one too large (dropped for good), one delivered. A later event in
    # the same batch meets an outage after a 400 split: the flush must settle anyway.
    def handler(request: Any) -> Any:
        ids = names(request)
        if len(ids) > 1:
            return 400
        if ids == ["later"]:
            return 503
        return ok(request)

    client, _ = clients(handler, flush_interval=3600)
    client.track(event_name="warmup", email="a@x.com")
    assert client.flush(timeout=5)  # the worker runs
    worker = client._worker
    result: dict[str, Any] = {}
    with worker.send_lock:  # the batch is taken only once "later" is queued behind the flush
        client.track(event_name="huge", email="a@x.com", properties={"blob": "x" * 1_100_000})
        client.track(event_name="mine", email="a@x.com")
        flusher = threading.Thread(
            target=lambda: result.setdefault("flush", client.flush(timeout=3))
        )
        flusher.start()
        deadline = time.monotonic() + 5
        while worker.queue.markers == 0 and time.monotonic() < deadline:
            time.sleep(0.001)
        client.track(event_name="later", email="a@x.com")
    flusher.join(5)
    assert result["flush"] == FlushResult(True, 0)
    assert client.stats.dropped_by_reason == {"too_large": 1}


def test_a_flush_let_go_by_shutdown_while_its_events_are_in_flight_is_not_settled(clients):
    # The shutdown gives up while the request holding the flush's events still runs: the
    # flush must not report them settled (they are then dropped as "shutdown").
    entered, release = threading.Event(), threading.Event()

    def handler(request: Any) -> Any:
        entered.set()
        release.wait(5)
        raise TransportError("connection reset")

    client, _ = clients(handler, flush_interval=0.05)
    track_many(client, 5)
    got: dict[str, Any] = {}

    def flusher() -> None:
        entered.wait(5)
        got["flush"] = client.flush(timeout=10)

    thread = threading.Thread(target=flusher)
    thread.start()
    assert entered.wait(5)
    time.sleep(0.1)
    client.shutdown(timeout=0.2)
    thread.join(2)
    release.set()
    assert not got["flush"].settled, got
    assert got["flush"].pending == 5
    deadline = time.monotonic() + 5
    while client.stats.dropped_by_reason.get("shutdown") != 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert client.stats.dropped_by_reason == {"shutdown": 5}


def test_many_async_flushes_waiting_at_once_take_no_thread_of_the_loops_pool(clients):
    # With a flush after each response (serverless, Cloud Run), every request of a burst
    # waits at once during an outage: the loop's default thread pool (a few threads) must
    # stay free for the app's own asyncio.to_thread() and DNS lookups.
    client, _ = clients(lambda request: 503)
    track_many(client, 3)

    async def main() -> tuple[float, list[Any]]:
        waits = [asyncio.create_task(client.aflush(timeout=2.0)) for _ in range(40)]
        await asyncio.sleep(0.2)
        started = time.monotonic()
        await asyncio.to_thread(lambda: None)
        elapsed = time.monotonic() - started
        return elapsed, await asyncio.gather(*waits)

    elapsed, results = asyncio.run(main())
    assert elapsed < 1.0, f"asyncio.to_thread waited {elapsed:.1f} s for a free thread"
    assert len(results) == 40 and not any(results)
    assert client._worker.queue.markers == 0  # every timed-out wait took its marker back


def test_an_async_flush_that_is_cancelled_takes_its_marker_back(clients):
    client, _ = clients(lambda request: 503)
    track_many(client, 1)

    async def main() -> None:
        wait = asyncio.create_task(client.aflush(timeout=30))
        await asyncio.sleep(0.1)
        wait.cancel()
        with pytest.raises(asyncio.CancelledError):
            await wait

    asyncio.run(main())
    assert client._worker.queue.markers == 0


def test_async_flush_and_shutdown_deliver_without_blocking_the_loop(clients):
    client, transport = clients()

    async def main():
        client.track(event_name="a", email="a@x.com")
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        assert await client.aflush(timeout=5)
        client.track(event_name="b", email="a@x.com")
        assert await client.ashutdown(timeout=5)
        task.cancel()
        return ticks

    assert asyncio.run(main()) > 0
    assert client.closed
    assert [e["eventName"] for e in transport.events] == ["a", "b"]


def test_with_block_delivers_and_shuts_down():
    transport = MockTransport()
    with Outlit(public_key="pk_ctx", transport=transport, flush_interval=60) as client:
        client.track(event_name="e", email="a@x.com")
    assert client.closed
    assert len(transport.events) == 1


def test_async_with_block_delivers_and_shuts_down():
    transport = MockTransport()

    async def main():
        async with Outlit(public_key="pk_ctx", transport=transport, flush_interval=60) as client:
            client.track(event_name="e", email="a@x.com")
        return client

    client = asyncio.run(main())
    assert client.closed
    assert len(transport.events) == 1


def test_creating_a_client_starts_no_thread_until_first_use(clients):
    def workers():
        return [t for t in threading.enumerate() if t.name == "outlit-worker"]

    before = len(workers())
    client, _ = clients()
    assert len(workers()) == before
    client.track(event_name="e", email="a@x.com")
    assert len(workers()) == before + 1
    client.shutdown()
    assert wait_until(lambda: len(workers()) == before)


def _slow_start(monkeypatch: pytest.MonkeyPatch, seconds: float) -> threading.Event:
    """Make the worker's start take ``seconds``; the returned event is set once it began."""
    from outlit._worker import Worker

    began = threading.Event()
    start = Worker.start

    def slow(self: Worker) -> bool:
        began.set()
        time.sleep(seconds)
        return start(self)

    monkeypatch.setattr(Worker, "start", slow)
    return began


def test_calls_made_while_the_worker_starts_are_queued_and_flushed(clients, monkeypatch):
    # The call that starts the worker does so outside the state lock (under gevent, a lock
    # held across Thread.start() could block the whole process): calls meanwhile queue their
    # events, and flush() and shutdown() wait for the start instead of missing them.
    began = _slow_start(monkeypatch, 0.3)
    client, transport = clients()
    starter = threading.Thread(target=client.track, kwargs={"event_name": "a", "user_id": "1"})
    starter.start()
    assert began.wait(5)
    client.track(event_name="b", user_id="2")  # returns at once, while the start goes on
    assert client.flush(5)
    assert "b" in [e["eventName"] for e in transport.events]  # flushed, not skipped
    starter.join(5)
    assert client.shutdown(5)
    assert sorted(e["eventName"] for e in transport.events) == ["a", "b"]


def test_a_shutdown_that_outlasts_the_start_counts_what_it_could_not_send(
    clients, monkeypatch, log
):
    began = _slow_start(monkeypatch, 1.0)
    client, transport = clients()
    starter = threading.Thread(target=client.track, kwargs={"event_name": "a", "user_id": "1"})
    starter.start()
    assert began.wait(5)
    client.track(event_name="b", user_id="2")
    assert client.flush(0.1) == FlushResult(False, 1)
    assert client.shutdown(0.1) == FlushResult(False, 1)
    starter.join(5)
    assert client.stats.dropped_by_reason == {"shutdown": 1}
    assert any("the worker was still starting" in m for m in records(log, logging.WARNING))
    assert transport.events == []


def test_a_shutdown_that_cannot_deliver_says_so_once(clients, log):
    # Not "flush gave up ... (they stay queued)" first: they do not stay, shutdown drops them.
    client, _ = clients(lambda request: 503)
    client.track(event_name="a", user_id="1")
    assert client.shutdown(0.3) == FlushResult(False, 1)
    warnings = records(log, logging.WARNING)
    assert [m for m in warnings if "gave up" in m or "undelivered" in m] == [
        next(m for m in warnings if "shut down with 1 undelivered events" in m)
    ]


def test_a_worker_start_that_raises_is_tried_again_by_the_next_call(clients, monkeypatch):
    from outlit._worker import Worker

    start = Worker.start
    failures = [MemoryError("no room for a thread stack")]

    def flaky(self: Worker) -> bool:
        if failures:
            raise failures.pop()
        return start(self)

    monkeypatch.setattr(Worker, "start", flaky)
    client, transport = clients()
    with pytest.raises(MemoryError):
        client.track(event_name="a", user_id="1")
    client.track(event_name="b", user_id="2")
    assert client._worker.alive
    assert client.flush(5)
    assert [e["eventName"] for e in transport.events] == ["b"]


# -- signals ---------------------------------------------------------------------------------


def test_batch_delivered_signal_reports_count_and_status(clients):
    delivered = Receiver()
    client, _ = clients(max_batch_size=2)
    with signals.batch_delivered.connected_to(delivered, sender=client):
        track_many(client, 3)
        assert client.flush(timeout=5)
    assert [sender for sender, _ in delivered.calls] == [client, client]
    assert delivered.kwargs == [{"count": 2, "status": 200}, {"count": 1, "status": 200}]


@pytest.mark.parametrize(
    ("failure", "status"),
    [(Response(503, {}, b'{"message":"maintenance"}'), 503), (TransportError("refused"), None)],
    ids=["http-503", "network"],
)
def test_batch_failed_signal_reports_the_failure_and_when_it_is_retried(clients, failure, status):
    failed = Receiver()
    client, _ = clients(fail_first(1, failure))
    with signals.batch_failed.connected_to(failed, sender=client):
        track_many(client, 2)
        assert client.flush(timeout=5)
    ((sender, kwargs),) = failed.calls
    assert sender is client
    assert set(kwargs) == {"count", "status", "error", "retry_in"}
    assert kwargs["count"] == 2
    assert kwargs["status"] == status
    assert isinstance(kwargs["error"], str)
    assert kwargs["error"]
    assert 0 <= kwargs["retry_in"] <= FAST_RETRY.max_backoff


def test_batch_failed_signal_for_a_rejected_batch_says_it_will_not_be_retried(clients):
    failed = Receiver()
    client, _ = clients(lambda request: Response(400, {}, b'{"message":"bad event"}'))
    with signals.batch_failed.connected_to(failed, sender=client):
        client.track(event_name="e", email="a@x.com")
        assert client.flush(timeout=5)
    assert failed.kwargs == [{"count": 1, "status": 400, "error": "bad event", "retry_in": None}]


def test_a_receiver_that_raises_does_not_break_delivery(clients, log):
    def broken(sender, **kwargs):
        raise ValueError("receiver bug")

    client, transport = clients(max_batch_size=2)
    with signals.batch_delivered.connected_to(broken, sender=client):
        track_many(client, 5)
        assert client.flush(timeout=5)
        client.track(event_name="later", email="a@x.com")
        assert client.flush(timeout=5)
    assert len(transport.events) == 6
    assert client.stats.delivered == 6
    assert any("batch_delivered" in m for m in records(log, logging.ERROR))


def test_an_async_receiver_is_not_left_as_a_coroutine_never_awaited(clients, log):
    import warnings

    ran = []

    async def on_delivered(sender, **kwargs):
        ran.append(kwargs)

    client, _ = clients()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "coroutine ... was never awaited" would be one
        with signals.batch_delivered.connected_to(on_delivered, sender=client):
            client.track(event_name="e", email="a@x.com")
            assert client.flush(timeout=5)
        gc.collect()
    assert ran == []
    errors = records(log, logging.ERROR)
    assert len(errors) == 1
    assert "is async and was not run" in errors[0] and "batch_delivered" in errors[0]


def test_signals_of_one_client_are_sent_with_that_client_as_sender(clients):
    delivered = Receiver()
    client_a, _ = clients()
    client_b, _ = clients()
    with signals.batch_delivered.connected_to(delivered):
        client_a.track(event_name="a", email="a@x.com")
        client_b.track(event_name="b", email="b@x.com")
        assert client_a.flush(timeout=5)
        assert client_b.flush(timeout=5)
    senders = [sender for sender, _ in delivered.calls]
    assert client_a in senders
    assert client_b in senders


# -- logging ---------------------------------------------------------------------------------


def test_successful_delivery_logs_nothing_above_debug_and_one_debug_line_per_batch(clients, log):
    client, _ = clients(max_batch_size=2)
    track_many(client, 5)
    assert client.flush(timeout=5)
    assert records(log, logging.INFO) == []
    posts = [m for m in records(log, logging.DEBUG, exact=True) if "POST" in m]
    assert len(posts) == 3
    assert all("-> 200" in m for m in posts)
    assert "2 events" in posts[0]
    assert "1 events" in posts[2]


def test_queue_size_counts_a_batch_being_taken_once(clients: ClientFactory) -> None:
    # The worker is in the middle of taking a batch (an odd property value is being printed
    # by the encoder's fallback), then sending it: queue_size, read from another thread, sees
    # the 11 events once, neither in the queue and in flight at the same time nor in neither.
    printing, release_print, release_send = threading.Event(), threading.Event(), threading.Event()

    class SlowToPrint:
        def __str__(self) -> str:
            printing.set()
            release_print.wait(5)
            return "slow"

    def held(request: Request) -> Response:
        release_send.wait(5)
        return ok(request)

    client, transport = clients(held)
    for n in range(11):
        properties = {"value": SlowToPrint()} if n == 5 else {"n": n}
        client.track(event_name=f"e{n}", user_id="u-1", properties=properties)
    flusher = threading.Thread(target=client.flush, kwargs={"timeout": 10})
    flusher.start()
    try:
        assert printing.wait(5), "the worker never reached the odd value"
        counts: list[int] = []
        reader = threading.Thread(target=lambda: counts.append(client.queue_size))
        reader.start()
        release_print.set()  # the take ends; the batch is in flight until release_send
        reader.join(5)
        assert counts == [11]
    finally:
        release_print.set()
        release_send.set()
        flusher.join(10)
    assert client.queue_size == 0
    (request,) = transport.requests
    assert len(request.json()["events"]) == 11
