"""Fault injection and scripted replies: what a client's retry logic is tested against."""

from __future__ import annotations

import http.client
import random
import socket
import time

import pytest
from collector_helpers import Client, body, custom

from outlit._collector import Collector, Reply


def _statuses(client: Client, count: int) -> list[int]:
    return [client.post(body(custom())).status for _ in range(count)]


def test_fail_rate_with_a_seed_fails_the_same_requests_every_time() -> None:
    draws = random.Random(7)
    expected = [503 if draws.random() < 0.4 else 200 for _ in range(25)]
    assert 503 in expected and 200 in expected
    for _ in range(2):
        with Collector(port=0, memory=True, fail_rate=0.4, seed=7) as collector:
            client = Client(collector.port)
            try:
                assert _statuses(client, 25) == expected
            finally:
                client.close()
            assert collector.stats.injected_failures == expected.count(503)
            assert collector.store.count() == expected.count(200)


def test_fail_rate_answers_the_given_status() -> None:
    with Collector(port=0, memory=True, fail_rate=1.0, status=500) as collector:
        client = Client(collector.port)
        try:
            answer = client.post(body(custom()))
        finally:
            client.close()
    assert answer.status == 500
    assert answer.json() == {"success": False, "message": "Internal server error"}


@pytest.mark.parametrize("status", [503, 401, 403, 404])
def test_status_alone_answers_every_ingest_request_with_it(status: int) -> None:
    with Collector(port=0, memory=True, status=status) as collector:
        client = Client(collector.port)
        try:
            answers = [client.post(body(custom())) for _ in range(3)]
            assert client.get("/healthz").status == 200  # only ingest is affected
        finally:
            client.close()
        assert [answer.status for answer in answers] == [status] * 3
        assert answers[0].json()["success"] is False
        assert collector.events() == []
    if status in (401, 403):
        assert answers[0].json()["message"] == "Invalid or inactive tracking configuration"


def test_latency_delays_each_ingest_answer() -> None:
    with Collector(port=0, memory=True, latency=0.25) as collector:
        client = Client(collector.port)
        try:
            started = time.monotonic()
            assert client.post(body(custom())).status == 200
            assert time.monotonic() - started >= 0.25
        finally:
            client.close()


def _start_of_a_second() -> None:
    # The limit counts per wall-clock second; start early in one so the burst fits in it.
    fraction = time.time() % 1
    if fraction > 0.5:
        time.sleep(1.02 - fraction)


def test_rate_limit_answers_429_with_retry_after_past_the_limit() -> None:
    with Collector(port=0, memory=True, rate_limit=3) as collector:
        client = Client(collector.port)
        try:
            _start_of_a_second()
            answers = [client.post(body(custom())) for _ in range(5)]
        finally:
            client.close()
        assert [answer.status for answer in answers] == [200, 200, 200, 429, 429]
        assert [answer.headers["x-ratelimit-remaining"] for answer in answers] == [
            "2",
            "1",
            "0",
            "0",
            "0",
        ]
        limited = answers[3]
        assert limited.headers["x-ratelimit-limit"] == "3"
        assert limited.headers["retry-after"] == "1"
        assert 0 < int(limited.headers["x-ratelimit-reset"]) - time.time() <= 1
        assert limited.json()["message"] == "Rate limit exceeded"
        assert "retry-after" not in answers[0].headers
        assert collector.stats.rate_limited == 2
        assert collector.store.count() == 3


def test_rate_limit_window_resets_after_a_second() -> None:
    with Collector(port=0, memory=True, rate_limit=1) as collector:
        client = Client(collector.port)
        try:
            _start_of_a_second()
            assert _statuses(client, 2) == [200, 429]
            time.sleep(1.0)
            assert _statuses(client, 1) == [200]
        finally:
            client.close()


def test_scripted_statuses_are_used_once_each_then_behaviour_is_normal(
    collector: Collector, client: Client
) -> None:
    collector.script(503, 503, 200)
    assert _statuses(client, 4) == [503, 503, 200, 200]
    assert collector.store.count() == 2
    assert collector.stats.injected_failures == 2


def test_script_accepts_a_list_and_keeps_appending(collector: Collector, client: Client) -> None:
    collector.script([500, 502])
    collector.script(504)
    assert _statuses(client, 4) == [500, 502, 504, 200]


def test_scripted_429_carries_the_given_retry_after(collector: Collector, client: Client) -> None:
    collector.script((429, {"Retry-After": "1"}), 429)
    first = client.post(body(custom()))
    second = client.post(body(custom()))
    assert (first.status, first.headers["retry-after"]) == (429, "1")
    assert first.json()["success"] is False
    assert second.status == 429
    assert "retry-after" not in second.headers  # only what the script says


def test_scripted_401_has_the_invalid_key_body(collector: Collector, client: Client) -> None:
    collector.script(401)
    answer = client.post(body(custom()))
    assert answer.status == 401
    assert answer.json()["errors"] == [
        {"index": -1, "message": "Invalid or inactive tracking configuration"}
    ]


def test_scripted_body_is_sent_as_given(collector: Collector, client: Client) -> None:
    partial = {"success": False, "processed": 1, "errors": [{"index": 1, "message": "no"}]}
    collector.script((207, {}, partial), Reply(500, body=b"not json"))
    assert client.post(body(custom(), custom())).json() == partial
    raw = client.post(body(custom()))
    assert (raw.status, raw.raw) == (500, b"not json")
    assert collector.events() == []


def test_scripted_200_with_headers_processes_the_request(
    collector: Collector, client: Client
) -> None:
    collector.script((200, {"X-RateLimit-Remaining": "0"}))
    answer = client.post(body(custom(uuid="kept")))
    assert answer.status == 200
    assert answer.json() == {"success": True, "processed": 1}
    assert answer.headers["x-ratelimit-remaining"] == "0"
    assert collector.events()[0]["uuid"] == "kept"


def test_scripted_disconnect_drops_the_connection_without_an_answer(
    collector: Collector, client: Client
) -> None:
    collector.script(Reply(disconnect=True))
    with pytest.raises(http.client.RemoteDisconnected):
        client.post(body(custom()))
    client.close()
    assert client.post(body(custom())).status == 200  # a new connection works
    assert [request.status for request in collector.requests] == [0, 200]


def test_scripted_delay_holds_that_answer_only(collector: Collector, client: Client) -> None:
    collector.script(Reply(503, delay=0.2))
    started = time.monotonic()
    assert client.post(body(custom())).status == 503
    assert time.monotonic() - started >= 0.2
    started = time.monotonic()
    assert client.post(body(custom())).status == 200
    assert time.monotonic() - started < 0.2


def test_script_refuses_what_it_cannot_send(collector: Collector) -> None:
    with pytest.raises(TypeError, match="scripted reply"):
        collector.script("503")  # type: ignore[arg-type]


def test_stop_does_not_wait_out_injected_latency() -> None:
    collector = Collector(port=0, memory=True, latency=30)
    collector.start()
    client = Client(collector.port)
    try:
        client.connection.request(
            "POST",
            "/api/i/v1/pk_test/events",
            body(custom()),
            {"Content-Type": "application/json"},
        )
        time.sleep(0.1)
        started = time.monotonic()
        collector.stop()
        assert time.monotonic() - started < 5
        # The request in flight still got its answer.
        assert client.connection.getresponse().status == 200
    finally:
        client.close()


def test_a_key_that_is_not_a_public_key_is_refused_and_said_in_the_log(
    collector: Collector, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    # A placeholder left in the settings: the refusal shows where the developer looks.
    with caplog.at_level("WARNING", logger="outlit.collector"):
        answer = client.post(body(custom()), key="pk_...")
    assert answer.status == 401
    (record,) = [r for r in caplog.records if "401" in r.getMessage()]
    assert "'pk_...'" in record.getMessage()
    assert "placeholder" in record.getMessage()


def _raw_post(port: int, head: str, body: bytes = b"", hang_up: bool = False) -> None:
    """One POST written by hand (headers the http.client would fix); waits for the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode("latin-1") + b"\r\n" + body)
        if hang_up:
            sock.shutdown(socket.SHUT_WR)
        sock.recv(65536)


def test_every_ingest_request_is_logged_once_with_its_answer(
    collector: Collector, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    # What `outlit dev` shows on its console: a failure you injected is there too.
    caplog.set_level("INFO", logger="outlit.collector")
    collector.script(503, Reply(disconnect=True))
    client.post(body(custom()))
    with pytest.raises(http.client.HTTPException):
        client.post(body(custom()))
    client.close()
    client.post(body(custom()), headers={"Content-Type": "text/plain"})
    client.post(b'{"source": "server", "events": []}')
    client.post(body(*[custom()] * 101))
    client.post(body(custom(), custom(eventName="")))
    client.post(body(custom()), key="pk_...")
    path = "/api/i/v1/pk_test_collector/events"
    _raw_post(collector.port, f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    _raw_post(
        collector.port,
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n",
        b"{}",
        hang_up=True,
    )
    _raw_post(
        collector.port, "POST /api/other HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n"
    )

    lines = [r.getMessage() for r in caplog.records if r.name == "outlit.collector"]
    key = "pk_test_collector"
    assert lines == [
        f"POST {key} -> 503 (scripted)",
        f"POST {key} -> no answer (scripted)",
        f"POST {key} -> 415 (Content-Type must be application/json, got 'text/plain')",
        f"POST {key} -> 400 (Invalid request body (events: must hold at least one event))",
        f"POST {key} -> 413 (At most 100 events per request, got 101)",
        f"POST {key} -> 207 (1 accepted, 1 refused)",
        # A placeholder key gets one line: the warning that says what to fix.
        "POST 'pk_...' -> 401: not a public key (pk_ then letters, digits, _ or -); "
        "a placeholder such as 'pk_...' left in the settings?",
        f"POST {key} -> 411 (Content-Length is required)",
        f"POST {key} -> no answer (the client went away mid-body)",
        "POST /api/other -> 404 (not an ingest path)",
    ]


def test_injected_failures_and_rate_limits_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="outlit.collector")
    with Collector(port=0, memory=True, fail_rate=1.0) as failing:
        client = Client(failing.port)
        try:
            client.post(body(custom()))
        finally:
            client.close()
    with Collector(port=0, memory=True, rate_limit=1) as limited:
        client = Client(limited.port)
        try:
            # Three requests within a second span at most two one-second windows, so one of
            # those windows sees two: at least one 429. (A burst slowed past a second by a
            # busy machine is tried again.)
            statuses: list[int] = []
            for _ in range(5):
                started = time.monotonic()
                burst = [client.post(body(custom())).status for _ in range(3)]
                statuses += burst
                if time.monotonic() - started < 1.0:
                    break
            assert 429 in statuses
        finally:
            client.close()

    lines = [r.getMessage() for r in caplog.records if r.name == "outlit.collector"]
    assert "POST pk_test_collector -> 503 (injected: --fail-rate 1.0)" in lines
    limited_lines = [line for line in lines if "-> 429 (over --rate-limit 1 requests/s)" in line]
    assert len(limited_lines) == statuses.count(429) >= 1
