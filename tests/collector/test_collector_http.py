"""The collector over real HTTP on 127.0.0.1: ingest answers, the JSON API, the page, lifecycle."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from pathlib import Path

import pytest
from collector_helpers import KEY, Client, billing, body, custom, identify, stage

from outlit._collector import Collector
from outlit._collector.store import EventStore


def test_good_batch_is_200_with_rate_limit_headers(collector: Collector, client: Client) -> None:
    answer = client.post(body(custom(), identify(), stage(), billing()))
    assert answer.status == 200
    assert answer.json() == {"success": True, "processed": 4}
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["x-ratelimit-limit"] == "100"
    assert answer.headers["x-ratelimit-remaining"] == "99"
    assert int(answer.headers["x-ratelimit-reset"]) > 1_700_000_000
    assert [event["type"] for event in collector.events()] == [
        "billing",
        "stage",
        "identify",
        "custom",
    ]


def test_partial_batch_is_207_and_stores_the_good_events(
    collector: Collector, client: Client
) -> None:
    answer = client.post(body(custom(uuid="ok"), custom(eventName=" "), identify(uuid="ok2")))
    assert answer.status == 207
    assert answer.json()["processed"] == 2
    assert answer.json()["errors"][0]["index"] == 1
    assert {event["uuid"] for event in collector.events()} == {"ok", "ok2"}
    assert collector.stats.events_rejected == 1


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"{oops", 400),
        (b'{"source": "server", "events": []}', 400),
        (body(*[custom()] * 101), 413),
    ],
)
def test_refused_bodies_store_nothing(
    collector: Collector, client: Client, data: bytes, status: int
) -> None:
    answer = client.post(data)
    assert answer.status == status
    assert answer.json()["success"] is False
    assert collector.events() == []


def test_body_over_the_size_limit_is_413_and_the_connection_stays_usable(
    collector: Collector, client: Client
) -> None:
    big = body(custom(properties={"pad": "x" * 1_000_001}))
    assert client.post(big).status == 413
    assert client.post(body(custom())).status == 200


def test_bad_public_key_is_401_with_the_service_body(collector: Collector, client: Client) -> None:
    answer = client.post(body(custom()), key="sk_secret")
    assert answer.status == 401
    assert answer.json() == {
        "success": False,
        "message": "Invalid or inactive tracking configuration",
        "errors": [{"index": -1, "message": "Invalid or inactive tracking configuration"}],
    }
    assert collector.events() == []


def test_body_that_is_not_declared_json_is_415(collector: Collector, client: Client) -> None:
    answer = client.post(body(custom()), headers={"Content-Type": "text/plain"})
    assert answer.status == 415
    assert "application/json" in answer.json()["message"]
    ok = client.post(body(custom()), headers={"Content-Type": "application/json; charset=utf-8"})
    assert ok.status == 200


def test_unknown_routes_are_404(client: Client) -> None:
    assert client.get("/nope").status == 404
    assert client.request("POST", "/api/i/v1/events", b"{}").status == 404
    assert client.request("POST", "/api/i/v1/pk_a/b/events", b"{}").status == 404
    assert client.get("/healthz").status == 200  # the connection survived


def test_retried_event_is_processed_but_stored_once(collector: Collector, client: Client) -> None:
    first = client.post(body(custom(uuid="same"), custom(uuid="other")))
    retry = client.post(body(custom(uuid="same")))
    assert first.json()["processed"] == 2
    assert retry.status == 200
    assert retry.json() == {"success": True, "processed": 1}
    assert [event["uuid"] for event in collector.events()] == ["other", "same"]
    stats = collector.stats
    assert (stats.events_stored, stats.duplicates) == (2, 1)


def test_json_api_returns_wire_events_exactly_newest_first(
    collector: Collector, client: Client
) -> None:
    exact = '{"type":"custom", "timestamp":1706400000000,"url":"server://x","path":"/","eventName":"a","userId":"u","properties":{"n":1.50}}'
    client.post(('{"source":"server","events":[' + exact + "]}").encode())
    client.post(body(identify(uuid="i1")))
    answer = client.get("/api/events")
    assert answer.status == 200
    # The stored text is returned byte for byte, inside the list.
    assert exact.encode() in answer.raw
    events = answer.json()["events"]
    assert [event["type"] for event in events] == ["identify", "custom"]
    assert events[1]["properties"] == {"n": 1.5}


def test_json_api_filters_limits_and_pages(collector: Collector, client: Client) -> None:
    client.post(
        body(
            custom(uuid="c1", eventName="exported", email="ada@example.com"),
            custom(uuid="c2", customerId="cust_9", email="bob@example.com"),
            identify(uuid="i1", email="ada@example.com"),
            billing(uuid="b1", status="churned", customerId=None),
        )
    )

    def uuids(query: str) -> list[str]:
        answer = client.get("/api/events?" + query)
        assert answer.status == 200, answer.raw
        return [event["uuid"] for event in answer.json()["events"]]

    assert uuids("type=custom") == ["c2", "c1"]
    assert uuids("name=exported") == ["c1"]
    assert uuids("name=churned") == ["b1"]
    assert uuids("email=ada%40example.com") == ["i1", "c1"]
    assert uuids("customer_id=cust_9") == ["c2"]
    assert uuids("customer_id=acme.com") == ["b1", "c2", "c1"]
    assert uuids("limit=2") == ["b1", "i1"]
    assert uuids("type=&name=") == ["b1", "i1", "c2", "c1"]  # empty filters are ignored
    assert client.get("/api/events?limit=many").status == 400
    # Numbers SQLite cannot hold were an OverflowError and a dropped connection; a negative
    # limit is SQLite's "no limit".
    assert client.get("/api/events?after_id=99999999999999999999999").status == 400
    assert client.get("/api/events?limit=-1").status == 400
    assert uuids("after_id=9223372036854775807") == []


def test_requests_for_another_host_name_are_refused(collector: Collector, client: Client) -> None:
    # A web page whose name was made to resolve to 127.0.0.1 (DNS rebinding) sends its own
    # name as Host: it must not read the stored events, nor send any.
    client.post(body(custom(uuid="c1")))
    for foreign in ("attacker.example", f"attacker.example:{collector.port}", "127.0.0.1.nip.io"):
        refused = client.request("GET", "/api/events", headers={"Host": foreign})
        assert refused.status == 421, foreign
        assert b"c1" not in refused.raw
        client.close()
    posted = client.request(
        "POST",
        f"/api/i/v1/{KEY}/events",
        body(custom(uuid="c2")),
        {
            "Host": "attacker.example",
            "Content-Type": "application/json",
        },
    )
    assert posted.status == 421
    client.close()
    for local in (
        "localhost",
        f"localhost:{collector.port}",
        "127.0.0.1",
        "127.0.0.2",
        f"[::1]:{collector.port}",
        "viewer.localhost",
        "localhost.",
        f"app.localhost.:{collector.port}",
    ):
        answer = client.request("GET", "/api/events", headers={"Host": local})
        assert answer.status == 200, local
    assert [event["uuid"] for event in collector.events()] == ["c1"]


def test_on_another_interface_any_host_name_is_answered() -> None:
    # Bound elsewhere than loopback (outlit dev --host 0.0.0.0, for a container), the user
    # chose to be reached under other names. Checked without binding such an address.
    with Collector(port=0, memory=True) as collector:
        server = collector._server
        assert server is not None and server.loopback_only
        assert not server.answers_host("attacker.example")
        server.loopback_only = False
        assert server.answers_host("attacker.example")
        assert server.answers_host("host.docker.internal:8787")


def test_json_api_meta_wraps_each_event_with_its_row(collector: Collector, client: Client) -> None:
    client.post(body(custom(uuid="a")))
    client.post(body(custom(uuid="b")), key="pk_other")
    items = client.get("/api/events?meta=1").json()["events"]
    assert [item["event"]["uuid"] for item in items] == ["b", "a"]
    assert items[0]["public_key"] == "pk_other"
    assert items[0]["id"] > items[1]["id"]
    assert isinstance(items[0]["received_at"], int)
    newer = client.get(f"/api/events?meta=1&after_id={items[1]['id']}").json()["events"]
    assert [item["event"]["uuid"] for item in newer] == ["b"]


def test_health_stats_and_viewer_page(collector: Collector, client: Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    client.post(body(custom()))
    stats = client.get("/api/stats").json()
    assert stats["ingest_requests"] == 1
    assert stats["events_stored"] == 1
    page = client.get("/")
    assert page.status == 200
    assert page.headers["content-type"].startswith("text/html")
    assert b"/api/events" in page.raw
    assert b"http://" not in page.raw and b"https://" not in page.raw  # no CDN


def test_one_keep_alive_connection_serves_many_requests(collector: Collector) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", collector.port, timeout=5)
    try:
        for i in range(20):
            connection.request(
                "POST",
                f"/api/i/v1/{KEY}/events",
                body(custom(uuid=f"k{i}")),
                {"Content-Type": "application/json"},
            )
            response = connection.getresponse()
            assert response.status == 200
            assert response.getheader("Connection") != "close"
            response.read()
        sock = connection.sock
        assert sock is not None
        local = sock.getsockname()
        connection.request("GET", "/healthz")
        connection.getresponse().read()
        assert connection.sock is sock and sock.getsockname() == local
    finally:
        connection.close()
    assert collector.store.count() == 20


def test_chunked_request_body_is_accepted(collector: Collector) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", collector.port, timeout=5)
    try:
        data = body(custom(uuid="chunked"))
        connection.request(
            "POST",
            f"/api/i/v1/{KEY}/events",
            iter([data[:10], data[10:]]),
            {"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
            encode_chunked=True,
        )
        response = connection.getresponse()
        assert response.status == 200, response.read()
        response.read()
    finally:
        connection.close()
    assert collector.events()[0]["uuid"] == "chunked"


def test_wait_for_events_returns_once_they_arrive(collector: Collector) -> None:
    def send_later() -> None:
        sender = Client(collector.port)
        try:
            sender.post(body(custom(uuid="late"), identify(uuid="late2")))
        finally:
            sender.close()

    timer = threading.Timer(0.2, send_later)
    timer.start()
    try:
        events = collector.wait_for_events(2, timeout=5)
    finally:
        timer.join()
    assert {event["uuid"] for event in events} == {"late", "late2"}
    assert [e["uuid"] for e in collector.wait_for_events(1, type="identify")] == ["late2"]
    with pytest.raises(TimeoutError, match=r"expected 3 events within 0\.1s, 2 arrived"):
        collector.wait_for_events(3, timeout=0.1)


def test_requests_are_recorded_with_their_answer(collector: Collector, client: Client) -> None:
    client.post(body(custom(uuid="r1")), headers={"User-Agent": "outlit-python/test"})
    client.post(body(custom()), key="bad")
    first, second = collector.requests
    assert (first.public_key, first.status, first.method) == (KEY, 200, "POST")
    assert first.path == f"/api/i/v1/{KEY}/events"
    assert first.headers["user-agent"] == "outlit-python/test"
    assert first.json()["events"][0]["uuid"] == "r1"
    assert second.status == 401


def test_acknowledged_events_are_committed_when_stop_returns(tmp_path: Path) -> None:
    path = tmp_path / "collector.sqlite3"
    collector = Collector(port=0, db_path=path)
    url = collector.start()
    assert url == f"http://127.0.0.1:{collector.port}"
    client = Client(collector.port)
    try:
        for i in range(30):
            assert client.post(body(*[custom(uuid=f"s{i}-{j}") for j in range(50)])).status == 200
    finally:
        client.close()
    collector.stop()
    with EventStore(path) as reopened:
        assert reopened.count() == 1500


def test_stop_closes_idle_keep_alive_connections_and_frees_the_port() -> None:
    collector = Collector(port=0, memory=True)
    collector.start()
    port = collector.port
    idle = Client(port)
    try:
        assert idle.get("/healthz").status == 200
        collector.stop()
        collector.stop()  # idempotent
        with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
            idle.get("/healthz")
    finally:
        idle.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_stop_does_not_wait_for_a_client_that_does_not_read_its_answer() -> None:
    # An answer bigger than the sockets' buffers, to a client that never reads: the write
    # blocks, and stop() waited for it to time out (300 s).
    collector = Collector(port=0, memory=True)
    collector.start()
    client = Client(collector.port)
    try:
        padding = "x" * 10_000
        for batch in range(12):
            events = [
                custom(uuid=f"e{batch}-{n}", properties={"padding": padding}) for n in range(90)
            ]
            assert client.post(body(*events)).status == 200
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", collector.port))
        stalled.sendall(b"GET /api/events?limit=1000 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        time.sleep(0.5)  # the answer is being written, and blocks
        started = time.monotonic()
        collector.stop()
        took = time.monotonic() - started
        stalled.close()
    finally:
        client.close()
        collector.stop()
    assert took < 10, f"stop() took {took:.1f} s"


def test_collector_cannot_be_started_twice(collector: Collector) -> None:
    with pytest.raises(RuntimeError, match="started once"):
        collector.start()


def test_unstarted_collector_refuses_reads_and_stops_quietly() -> None:
    collector = Collector(port=0, memory=True)
    with pytest.raises(RuntimeError, match="not been started"):
        collector.events()
    collector.stop()
    with pytest.raises(RuntimeError, match="started once"):
        collector.start()


def test_collector_binds_loopback_by_default() -> None:
    with Collector(port=0, memory=True) as collector:
        assert collector.host == "127.0.0.1"
        assert collector.url.startswith("http://127.0.0.1:")


@pytest.mark.parametrize(
    "kwargs",
    [{"fail_rate": 1.5}, {"latency": -1}, {"rate_limit": 0}, {"status": 42}],
)
def test_bad_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Collector(port=0, memory=True, **kwargs)  # type: ignore[arg-type]


def test_reset_forgets_everything(collector: Collector, client: Client) -> None:
    client.post(body(custom(uuid="x")))
    collector.script(503)
    collector.reset()
    assert collector.events() == []
    assert collector.requests == []
    assert collector.stats.ingest_requests == 0
    assert client.post(body(custom(uuid="x"))).status == 200  # script cleared, uuid forgotten
    assert json.loads(json.dumps(collector.events()))[0]["uuid"] == "x"


def _raw_exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_expect_100_continue_is_answered_before_the_body(collector: Collector) -> None:
    data = body(custom(uuid="curl"))
    with socket.create_connection(("127.0.0.1", collector.port), timeout=5) as sock:
        sock.sendall(
            f"POST /api/i/v1/{KEY}/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n".encode()
        )
        assert sock.recv(64).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(data)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Connection: close" in reply
    assert collector.events()[0]["uuid"] == "curl"


def test_http_1_0_request_gets_its_answer_and_the_connection_closes(collector: Collector) -> None:
    reply = _raw_exchange(collector.port, b"GET /healthz HTTP/1.0\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n")
    assert reply.endswith(b'{"status":"ok"}')


def test_malformed_request_line_is_400(collector: Collector) -> None:
    reply = _raw_exchange(collector.port, b"NONSENSE\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400 Bad Request\r\n")


def test_head_has_headers_only_and_other_methods_are_405(
    collector: Collector, client: Client
) -> None:
    head = client.request("HEAD", "/healthz")
    assert (head.status, head.raw) == (200, b"")
    assert client.request("DELETE", "/api/events").status == 405


def test_wait_for_events_while_events_stream_in(collector: Collector) -> None:
    def send() -> None:
        sender = Client(collector.port)
        try:
            for i in range(200):
                sender.post(body(custom(uuid=f"stream{i}")))
        finally:
            sender.close()

    thread = threading.Thread(target=send)
    thread.start()
    try:
        for expected in (1, 50, 120, 200):
            assert len(collector.wait_for_events(expected, timeout=10)) >= expected
    finally:
        thread.join()
    assert collector.stats.events_stored == 200


def test_file_collector_shows_each_event_as_soon_as_it_is_acknowledged(tmp_path: Path) -> None:
    # With a file, rows are committed on a writer thread; reads must still see every
    # acknowledged event.
    with Collector(port=0, db_path=tmp_path / "events.sqlite3") as collector:
        client = Client(collector.port)
        try:
            for i in range(30):
                assert client.post(body(custom(uuid=f"f{i}"))).status == 200
                assert collector.events(limit=1)[0]["uuid"] == f"f{i}"
                answer = client.get("/api/events?limit=1")
                assert answer.json()["events"][0]["uuid"] == f"f{i}"
            assert client.post(body(custom(uuid="f0"))).status == 200
        finally:
            client.close()
        stats = collector.stats
        assert (stats.events_stored, stats.duplicates) == (30, 1)
