"""The client against a real HTTP server on 127.0.0.1: the project's local collector, which
checks every body against the wire contract and can be scripted to fail."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import Counter
from typing import Any

import pytest

from outlit import Outlit, signals
from outlit._collector.server import Collector, Reply

QUICK_START = {
    "email": "user@example.com",
    "customer_id": "cust_123",
    "customer_domain": "acme.com",
    "event_name": "subscription_upgraded",
    "properties": {"fromPlan": "starter", "toPlan": "pro", "mrr": 99},
}


def _uuids(events: list[dict[str, Any]]) -> Counter[str]:
    return Counter(event["uuid"] for event in events)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_quick_start_event_arrives_exactly_as_documented(collector, make_client):
    client = make_client(api_host=collector.url)
    before = int(time.time() * 1000)
    client.track(**QUICK_START)
    assert client.flush(timeout=5)
    (event,) = collector.wait_for_events(1)
    assert event.pop("timestamp") >= before
    assert len(event.pop("uuid")) == 36
    assert event == {
        "type": "custom",
        "url": "server://user@example.com",
        "path": "/",
        "eventName": "subscription_upgraded",
        "email": "user@example.com",
        "customerId": "cust_123",
        "customerDomain": "acme.com",
        "properties": {"fromPlan": "starter", "toPlan": "pro", "mrr": 99},
    }
    request = collector.requests[-1]
    assert request.path == "/api/i/v1/pk_test_e2e/events"
    assert request.json()["source"] == "server"
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in request.headers


def test_every_call_is_accepted_by_the_collector_contract(collector, make_client):
    client = make_client(api_host=collector.url + "/")  # a trailing slash must not give //api
    client.track(user_id="usr_1", event_name="feature_used", properties={"feature": "export"})
    client.identify(
        email="jane@acme.com",
        user_id="usr_1",
        customer_id="cust_1",
        customer_domain="acme.com",
        traits={"name": "Jane"},
        customer_traits={"plan": "enterprise", "seats": 50},
    )
    client.user.identify(user_id="usr_2", fingerprint="fp_1")
    client.user.activate(email="jane@acme.com", properties={"flow": "onboarding"})
    client.user.engaged(user_id="usr_1", properties={"milestone": "first_project_created"})
    client.user.inactive(fingerprint="fp_1", properties={"reason": "no_login_30_days"})
    client.customer.trialing(customer_domain="acme.com", properties={"trialEndsAt": "2024-02-15"})
    client.customer.paid(customer_id="cust_1", properties={"plan": "pro", "amount": 99})
    client.customer.churned(customer_domain="acme.com", customer_id="cust_1")
    assert client.flush(timeout=5)
    events = collector.wait_for_events(9)
    assert collector.stats.events_rejected == 0
    assert all(r.status == 200 for r in collector.requests)
    assert Counter(e["type"] for e in events) == {
        "custom": 1,
        "identify": 2,
        "stage": 3,
        "billing": 3,
    }
    assert client.stats.delivered == 9


def test_events_survive_a_burst_of_server_errors_and_are_stored_once(collector, make_client):
    collector.script(503, 500, (502, {}))
    client = make_client(api_host=collector.url)
    for i in range(5):
        client.track(email=f"u{i}@example.com", event_name="burst")
    assert client.flush(timeout=10)
    events = collector.wait_for_events(5)
    assert len(events) == 5 and set(_uuids(events).values()) == {1}
    bodies = [r.body for r in collector.requests]
    assert [r.status for r in collector.requests] == [503, 500, 502, 200]
    # A retry sends the very same bytes: same events, same uuids.
    assert len(set(bodies)) == 1
    assert client.stats.retries == 3


def test_rate_limited_batch_waits_for_retry_after(collector, make_client):
    collector.script((429, {"Retry-After": "1"}))
    client = make_client(api_host=collector.url)
    client.track(email="a@example.com", event_name="limited")
    started = time.monotonic()
    assert client.flush(timeout=10)
    elapsed = time.monotonic() - started
    assert elapsed >= 0.9, "the client must not retry before Retry-After"
    assert len(collector.wait_for_events(1)) == 1
    statuses = [r.status for r in collector.requests]
    assert statuses == [429, 200]


def test_partial_rejection_is_logged_and_not_resent(collector, make_client, caplog):
    body = {
        "success": False,
        "processed": 2,
        "errors": [{"index": 1, "message": "eventName: too long"}],
    }
    collector.script(Reply(207, body=body))
    client = make_client(api_host=collector.url)
    dropped: list[dict[str, Any]] = []

    def on_drop(sender: Outlit, **kw: Any) -> None:
        dropped.append(kw)

    signals.events_dropped.connect(on_drop)
    try:
        with caplog.at_level(logging.WARNING, logger="outlit"):
            for name in ("a", "b", "c"):
                client.track(email="a@example.com", event_name=name)
            assert client.flush(timeout=5)
    finally:
        signals.events_dropped.disconnect(on_drop)
    time.sleep(0.2)
    assert len(collector.requests) == 1, "a 207 must not be resent"
    assert client.stats.dropped_by_reason == {"rejected": 1}
    assert client.stats.delivered == 2
    assert dropped and dropped[0]["reason"] == "rejected" and dropped[0]["count"] == 1
    assert "eventName: too long" in caplog.text


def test_one_poison_event_is_isolated_and_the_rest_delivered(collector, make_client, caplog):
    # Batch [e0 e1 e2 e3] -> 400; halves [e0 e1] ok, [e2 e3] -> 400; [e2] ok, [e3] -> 400.
    poison = Reply(400, body={"success": False, "message": "Invalid event payload"})
    collector.script(poison, 200, poison, 200, poison)
    client = make_client(api_host=collector.url, flush_interval=60)
    for i in range(4):
        client.track(email="a@example.com", event_name=f"e{i}")
    with caplog.at_level(logging.ERROR, logger="outlit"):
        assert client.flush(timeout=5)
    stored = collector.wait_for_events(3)
    assert sorted(e["eventName"] for e in stored) == ["e0", "e1", "e2"]
    assert client.stats.dropped_by_reason == {"rejected": 1}
    assert [len(r.json()["events"]) for r in collector.requests] == [4, 2, 2, 1, 1]
    assert "Invalid event payload" in caplog.text


def test_bad_key_stops_sending_with_one_error_and_bounded_memory(make_client, caplog):
    with Collector(port=0, memory=True, status=401) as refusing:
        client = make_client(api_host=refusing.url, max_queue_size=50)
        with caplog.at_level(logging.ERROR, logger="outlit"):
            client.track(email="a@example.com", event_name="first")
            client.flush(timeout=5)
            for i in range(500):
                client.track(email="a@example.com", event_name=f"later{i}")
            client.flush(timeout=5)
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1 and "public key" in errors[0].getMessage()
        assert len(refusing.requests) == 1, "no request after the key was refused"
        assert client.queue_size == 0
        stats = client.stats
        # Every one of the 501 events is accounted for: refused with the key, or past the cap.
        by_reason = stats.dropped_by_reason
        assert by_reason["invalid_key"] >= 1
        assert by_reason["invalid_key"] + by_reason.get("queue_full", 0) == 501
        assert stats.delivered == 0


def test_events_wait_while_the_collector_is_down_and_arrive_when_it_is_back(make_client):
    port = _free_port()
    client = make_client(api_host=f"http://127.0.0.1:{port}", timeout=1)
    for i in range(20):
        client.track(email="a@example.com", event_name=f"offline{i}")
    result = client.flush(timeout=0.5)
    assert not result and result.pending == 20
    assert client.stats.failed_requests >= 1
    with Collector(port=port, memory=True) as back:
        assert client.flush(timeout=10)
        events = back.wait_for_events(20)
    assert sorted(_uuids(events).values()) == [1] * 20


def test_a_timed_out_send_is_retried_and_stored_once(make_client):
    # The collector stores the batch but answers after the client's timeout: the retry
    # carries the same uuids, so the service keeps one copy.
    with Collector(port=0, memory=True) as slow:
        slow.script(Reply(200, delay=1.0))
        client = make_client(api_host=slow.url, timeout=0.3)
        client.track(email="a@example.com", event_name="slow")
        assert client.flush(timeout=10)
        time.sleep(1.0)  # let the delayed answer finish on the server side
        events = slow.events()
        assert len(events) == 1
        assert client.stats.retries >= 1


def test_a_large_flush_is_split_by_count(collector, make_client):
    client = make_client(api_host=collector.url, flush_interval=60)
    for i in range(250):
        client.track(user_id=f"u{i}", event_name="bulk")
    assert client.flush(timeout=10)
    assert [len(r.json()["events"]) for r in collector.requests] == [100, 100, 50]
    assert len(collector.wait_for_events(250)) == 250


def test_a_large_flush_is_split_by_body_size(collector, make_client):
    client = make_client(api_host=collector.url, flush_interval=60)
    blob = "x" * 120_000
    for i in range(20):
        client.track(user_id=f"u{i}", event_name="big", properties={"blob": blob})
    assert client.flush(timeout=10)
    sizes = [len(r.body) for r in collector.requests]
    assert all(size <= 1_000_000 for size in sizes)
    assert len(sizes) >= 3
    assert len(collector.wait_for_events(20)) == 20


def test_eight_threads_deliver_every_event_exactly_once(collector, make_client):
    client = make_client(
        api_host=collector.url, max_requests_per_second=1000, max_queue_size=50_000
    )
    per_thread = 5000

    def work(n: int) -> None:
        for i in range(per_thread):
            client.track(user_id=f"t{n}", event_name="threaded", properties={"i": i})

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert client.flush(timeout=60)
    assert collector.stats.events_stored == 8 * per_thread
    assert collector.stats.duplicates == 0
    stats = client.stats
    assert stats.delivered == 8 * per_thread and stats.dropped == 0
    stored = collector.events(limit=8 * per_thread)
    assert {(e["userId"], e["properties"]["i"]) for e in stored} == {
        (f"t{n}", i) for n in range(8) for i in range(per_thread)
    }


def test_flush_waits_only_for_events_queued_before_it(collector, make_client):
    collector.latency = 0.3
    client = make_client(api_host=collector.url, flush_interval=60)
    client.track(email="a@example.com", event_name="before")
    seen: dict[str, Any] = {}

    def flush() -> None:
        seen["result"] = client.flush(timeout=5)
        seen["queued"] = client.queue_size
        seen["stored"] = [e["eventName"] for e in collector.events()]

    thread = threading.Thread(target=flush)
    thread.start()
    time.sleep(0.05)  # "before" is in its 0.3 s request now
    client.track(email="a@example.com", event_name="after")
    thread.join()
    assert seen["result"]
    # It returned once "before" was stored, without waiting for "after" (still queued: with a
    # 60 s interval and no batch to fill, nothing sends it until the next flush).
    assert seen["stored"] == ["before"]
    assert seen["queued"] == 1
    assert client.flush(timeout=5)
    assert sorted(e["eventName"] for e in collector.events()) == ["after", "before"]


def test_async_flush_does_not_block_the_event_loop(collector, make_client):
    import asyncio

    collector.latency = 0.5
    client = make_client(api_host=collector.url, flush_interval=60)
    client.track(email="a@example.com", event_name="async")

    async def main() -> tuple[int, bool]:
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        task = asyncio.create_task(ticker())
        result = await client.aflush(timeout=5)
        stop.set()
        await task
        return ticks, bool(result)

    ticks, settled = asyncio.run(main())
    assert settled
    assert ticks >= 20, "the loop kept running while the flush waited"


@pytest.mark.parametrize("shutdown", ["shutdown", "context"])
def test_shutdown_flushes_and_later_calls_raise(collector, shutdown):
    if shutdown == "context":
        with Outlit(public_key="pk_ctx", api_host=collector.url) as client:
            client.track(email="a@example.com", event_name="ctx")
    else:
        client = Outlit(public_key="pk_ctx", api_host=collector.url)
        client.track(email="a@example.com", event_name="ctx")
        assert client.shutdown()
        assert client.shutdown(), "shutdown is idempotent"
    assert len(collector.events()) == 1
    with pytest.raises(RuntimeError):
        client.track(email="a@example.com", event_name="late")


def test_a_burst_of_requests_that_each_flush_goes_out_in_full_batches(collector, make_client):
    # A flush after every response (serverless, FLUSH_ON_REQUEST_FINISHED), 300 requests at
    # once: the events share batches rather than one HTTP request each (which the service's
    # 100 requests per second would pace over three seconds). The worker is held until the
    # whole burst is queued, so the count does not depend on its wake-ups.
    import asyncio

    client = make_client(api_host=collector.url, flush_interval=60)
    client.track(event_name="warm_up", email="a@example.com")
    assert client.flush(timeout=5)  # the worker runs
    worker = client._worker

    async def burst() -> list[Any]:
        async def request(n: int) -> Any:
            client.track(event_name="signed_in", email=f"u{n}@example.com")
            return await client.aflush(timeout=10)

        async def let_the_worker_go() -> None:
            while worker.queue.markers < 300:
                await asyncio.sleep(0.001)
            worker.send_lock.release()

        worker.send_lock.acquire()
        results = await asyncio.gather(let_the_worker_go(), *(request(n) for n in range(300)))
        return results[1:]

    results = asyncio.run(burst())
    assert all(results)
    assert collector.stats.events_stored == 301
    assert collector.stats.ingest_requests == 4  # the warm-up's, then 3 of 100 events
