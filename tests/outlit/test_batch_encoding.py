"""The worker's batch path: a run of queued events is given its uuids and encoded in one call,
falling back to event-by-event encoding when a value needs care or the body is too large.

What must not change: the bytes on the wire, the warnings, the 1 MB limit, and each event's
uuid from its first attempt to its last.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import functools
import itertools
import logging
import math
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import outlit._worker
from outlit import MAX_BODY_BYTES, Request, Response
from outlit._encoding import encode_body, encode_event
from outlit._ids import new_uuids
from outlit._queue import BODY_OVERHEAD, EventQueue, FlushMarker, build_body

try:
    from ._helpers import ClientFactory, assert_valid_body, client_factory, ok, strict_json
except ImportError:
    from _helpers import ClientFactory, assert_valid_body, client_factory, ok, strict_json

ENCODERS = pytest.mark.parametrize("use_orjson", [True, False], ids=["orjson", "stdlib"])
TIMESTAMP = 1_700_000_000_000


@pytest.fixture
def clients() -> Iterator[ClientFactory]:
    with client_factory() as factory:
        yield factory


class Color(enum.Enum):
    RED = "red"


class Opaque:
    def __str__(self) -> str:
        return "<opaque thing>"


def event(name: str, /, **properties: Any) -> dict[str, Any]:
    return {
        "type": "custom",
        "timestamp": TIMESTAMP,
        "url": "server://u1",
        "path": "/",
        "eventName": name,
        "userId": "u1",
        "properties": properties,
        "uuid": str(uuid.uuid4()),
    }


def names(request: Request) -> list[str]:
    return [e["eventName"] for e in strict_json(request.body)["events"]]


def uuids_by_name(requests: list[Request]) -> dict[str, set[str]]:
    seen: dict[str, set[str]] = {}
    for request in requests:
        for e in strict_json(request.body)["events"]:
            seen.setdefault(e["eventName"], set()).add(e["uuid"])
    return seen


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "outlit" and r.levelno == logging.WARNING and "serializable" in r.getMessage()
    ]


# -- encode_body -----------------------------------------------------------------------------


@ENCODERS
def test_one_call_gives_the_same_bytes_as_event_by_event(use_orjson):
    events = [
        event("plain"),
        event("typed", at=dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)),
        event("more", amount=decimal.Decimal("12.5"), color=Color.RED, tags={"b", "a"}),
        event("keys", nested={1: "one", "2": [1.5, None, True]}),
        event("text", name='Zoë 漢字 \u2028 "quoted" \\ back'),
    ]
    body = encode_body(events, use_orjson=use_orjson)
    assert body is not None
    assert body == build_body([encode_event(e, use_orjson=use_orjson) for e in events])
    assert_valid_body(body)


@ENCODERS
@pytest.mark.parametrize(
    "odd",
    ["object", "surrogate", "cycle", "huge-int", "nan"],
)
def test_one_call_gives_up_without_raising_when_an_event_needs_care(use_orjson, odd):
    value: Any
    if odd == "object":
        value = Opaque()
    elif odd == "surrogate":
        value = "bad \ud800 text"
    elif odd == "cycle":
        value = []
        value.append(value)
    elif odd == "huge-int":
        value = 10**5000
    else:
        value = math.nan
    events = [event("fine"), event("odd", v=value), event("fine too")]
    body = encode_body(events, use_orjson=use_orjson)
    if odd == "nan" and use_orjson:
        # orjson writes NaN as null, exactly as encode_event does for one event
        assert body == build_body([encode_event(e) for e in events])
    else:
        assert body is None


KEYS = st.text(max_size=6) | st.integers(min_value=-5, max_value=5)
VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.dates(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(KEYS, children, max_size=3),
    max_leaves=8,
)


@ENCODERS
def test_one_call_matches_event_by_event_for_any_properties(use_orjson):
    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
        database=None,
    )
    @given(st.lists(st.dictionaries(KEYS, VALUES, max_size=4), min_size=1, max_size=5))
    def check(properties: list[dict[Any, Any]]) -> None:
        events = [event(f"e{i}", **{"p": p}) for i, p in enumerate(properties)]
        body = encode_body(events, use_orjson=use_orjson)
        if body is not None:
            assert body == build_body([encode_event(e, use_orjson=use_orjson) for e in events])

    check()


# -- uuids -----------------------------------------------------------------------------------

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


@pytest.mark.parametrize("count", [0, 1, 2, 100, 1000])
def test_new_uuids_are_distinct_canonical_version_4(count):
    made = new_uuids(count)
    assert len(made) == count
    assert len(set(made)) == count
    for text in made:
        assert UUID4.match(text), text
        parsed = uuid.UUID(text)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == text


def test_new_uuids_use_every_digit_in_every_random_position():
    made = new_uuids(3000)
    for position in range(36):
        digits = Counter(text[position] for text in made)
        if position in (8, 13, 18, 23):
            assert set(digits) == {"-"}
        elif position == 14:
            assert set(digits) == {"4"}
        elif position == 19:
            assert set(digits) == set("89ab")
            assert min(digits.values()) > 3000 / 4 * 0.8
        else:
            assert set(digits) == set("0123456789abcdef"), position
            assert min(digits.values()) > 3000 / 16 * 0.6, (position, digits)


# -- the queue -------------------------------------------------------------------------------


def _ids() -> Callable[[], str]:
    """A stand-in uuid source: "id-1", "id-2"... in the order they are asked for."""
    count = itertools.count(1)
    return lambda: f"id-{next(count)}"


def test_take_batch_stops_at_a_flush_marker_and_leaves_it_in_place():
    queue = EventQueue()
    first, second, third = {"n": 1, "timestamp": 1}, ("e", "a@x.io"), {"n": 3}
    marker = FlushMarker()
    queue.extend([first, second])
    queue.add_marker(marker)
    queue.append(third)
    assert queue.take_batch(10, 10_000) == [first, second]
    assert list(queue) == [marker, third]
    assert queue.take_batch(10, 10_000) == []
    assert list(queue) == [marker, third]


def test_take_batch_respects_the_count_and_leaves_encoded_events_over_the_limit():
    queue = EventQueue()
    queue.extend([b'{"n":0}', b'{"n":1}'])
    queue.extend({"n": i, "timestamp": i} for i in range(2, 6))
    # Items not encoded yet are not counted against the limit: the worker encodes them after.
    limit = BODY_OVERHEAD + len(b'{"n":0}')
    assert queue.take_batch(10, limit) == [b'{"n":0}']
    assert [e if type(e) is bytes else e["n"] for e in queue.take_batch(3, limit)] == [
        b'{"n":1}',
        2,
        3,
    ]
    assert [e["n"] for e in queue] == [4, 5]


def test_the_pure_worker_turns_queued_track_tuples_into_wire_dicts_in_order(clients, monkeypatch):
    # track() queues a flat tuple; other calls queue dicts. Both become wire dicts ready to
    # encode, in order: a uuid each (a dict keeps the one it has), int milliseconds.
    monkeypatch.setattr(outlit._worker, "_compiled_take_batch", None)
    worker = clients()[0]._worker
    worker._uuids = ["id-4", "id-3", "id-2", "id-1"]  # the stock of uuids, taken from the end
    queue = worker.queue
    identify = {"type": "identify", "n": 1, "timestamp": 2.25}
    retried = {"type": "identify", "n": 2, "timestamp": 5, "uuid": "kept"}
    queue.append(("e0", "a@x.io", None, None, None, None, {"k": 1}, 1.5))
    queue.append(identify)
    queue.append(("e2", None, "u2", "fp", "c2", "c2.io", None, 7))
    queue.append(retried)
    queue.append(("after", "a@x.io"))
    taken, body = worker._take(4)
    assert strict_json(body)["events"] == taken
    assert worker.inflight == 4
    assert taken == [
        {
            "type": "custom",
            "timestamp": 1500,
            "url": "server://a@x.io",
            "path": "/",
            "eventName": "e0",
            "uuid": "id-1",
            "email": "a@x.io",
            "properties": {"k": 1},
        },
        {"type": "identify", "n": 1, "timestamp": 2250, "uuid": "id-2"},
        {
            "type": "custom",
            "timestamp": 7,
            "url": "server://u2",
            "path": "/",
            "eventName": "e2",
            "uuid": "id-3",
            "userId": "u2",
            "fingerprint": "fp",
            "customerId": "c2",
            "customerDomain": "c2.io",
        },
        {"type": "identify", "n": 2, "timestamp": 5, "uuid": "kept"},
    ]
    assert taken[1] is identify
    assert list(queue) == [("after", "a@x.io")]


def test_take_batch_encodes_queued_track_tuples_and_event_dicts_with_the_worker(clients):
    worker = clients()[0]._worker
    worker._uuids = ["id-2", "id-1"]  # the stock of uuids, taken from the end
    queue = EventQueue()
    queue.append(("e0", None, None, None, "c1", None, None, TIMESTAMP))
    queue.append({"type": "identify", "email": "a@x.io", "timestamp": 1.25})
    seen = queue.take_batch(10, 10_000)
    (custom, identify) = [worker._encode_item(item) for item in seen]
    assert strict_json(custom) == {
        "type": "custom",
        "timestamp": TIMESTAMP,
        "url": "server://c1",
        "path": "/",
        "eventName": "e0",
        "uuid": "id-1",
        "customerId": "c1",
    }
    assert strict_json(identify) == {
        "type": "identify",
        "email": "a@x.io",
        "timestamp": 1250,
        "uuid": "id-2",
    }
    assert [type(item) for item in seen] == [tuple, dict]


# -- through the worker ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("identity", "url"),
    [
        ({"email": "a@x.io", "user_id": "u1"}, "server://a@x.io"),
        ({"user_id": "u1", "customer_domain": "x.io"}, "server://u1"),
        ({"customer_domain": "x.io", "customer_id": "c1"}, "server://x.io"),
        ({"customer_id": "c1", "fingerprint": "fp"}, "server://c1"),
        ({"fingerprint": "fp", "email": "  "}, "server://fp"),
    ],
)
def test_track_puts_each_identity_under_its_wire_name(clients, identity, url):
    client, transport = clients()
    client.track(event_name="e", properties={"p": [1]}, timestamp=TIMESTAMP, **identity)
    assert client.flush(timeout=5)
    (sent,) = assert_valid_body(transport.requests[0].body)["events"]
    wire = {"email": "email", "user_id": "userId", "fingerprint": "fingerprint"}
    wire |= {"customer_id": "customerId", "customer_domain": "customerDomain"}
    expected = {wire[k]: v for k, v in identity.items() if v.strip()}
    assert {k: v for k, v in sent.items() if k in wire.values()} == expected
    assert sent["url"] == url
    assert (sent["type"], sent["path"], sent["eventName"]) == ("custom", "/", "e")
    assert sent["timestamp"] == TIMESTAMP and sent["properties"] == {"p": [1]}


def test_track_and_other_calls_keep_their_order_in_one_batch(clients):
    client, transport = clients()
    client.track(event_name="first", user_id="u1")
    client.identify(email="a@x.io", traits={"plan": "pro"})
    client.track(event_name="second", customer_id="c1")
    client.customer.paid(customer_id="c1")
    client.user.activate(user_id="u1")
    assert client.flush(timeout=5)
    (request,) = transport.requests
    sent = assert_valid_body(request.body)["events"]
    assert [e["type"] for e in sent] == ["custom", "identify", "custom", "billing", "stage"]
    assert [e.get("eventName") for e in sent if e["type"] == "custom"] == ["first", "second"]
    assert len({e["uuid"] for e in sent}) == 5


def test_a_batch_is_one_request_with_fresh_uuids_and_integer_timestamps(clients):
    client, transport = clients()
    for i in range(10):
        client.track(event_name=f"e{i}", user_id="u1", properties={"i": i})
    assert client.flush(timeout=5)
    (request,) = transport.requests
    sent = assert_valid_body(request.body)["events"]
    assert [e["eventName"] for e in sent] == [f"e{i}" for i in range(10)]
    assert len({e["uuid"] for e in sent}) == 10
    assert all(UUID4.match(e["uuid"]) for e in sent)
    assert all(type(e["timestamp"]) is int and e["timestamp"] > 1_600_000_000_000 for e in sent)


@pytest.mark.parametrize("use_orjson", [True, False], ids=["orjson", "stdlib"])
def test_one_odd_value_sends_the_batch_event_by_event_with_one_warning(
    clients, caplog, monkeypatch, use_orjson
):
    monkeypatch.setattr(
        outlit._worker, "encode_body", functools.partial(encode_body, use_orjson=use_orjson)
    )
    caplog.set_level(logging.WARNING, logger="outlit")
    client, transport = clients()
    for i in range(5):
        props: dict[str, Any] = {"i": i}
        if i == 2:
            props.update(thing=Opaque(), n=math.nan)
        client.track(event_name=f"e{i}", user_id="u1", properties=props)
    assert client.flush(timeout=5)
    (request,) = transport.requests
    sent = assert_valid_body(request.body)["events"]
    assert [e["eventName"] for e in sent] == [f"e{i}" for i in range(5)]
    assert sent[2]["properties"] == {"i": 2, "thing": "<opaque thing>", "n": None}
    assert [e["properties"] for e in sent if e["eventName"] != "e2"] == [
        {"i": 0},
        {"i": 1},
        {"i": 3},
        {"i": 4},
    ]
    assert len({e["uuid"] for e in sent}) == 5
    (warning,) = warnings(caplog)
    assert "e2" in warning
    assert "Opaque" in warning
    assert client.stats.delivered == 5


def test_nan_alone_needs_no_fallback_on_the_stdlib_encoder_either(clients, monkeypatch):
    monkeypatch.setattr(
        outlit._worker, "encode_body", functools.partial(encode_body, use_orjson=False)
    )
    client, transport = clients()
    client.track(event_name="a", user_id="u1", properties={"x": 1.5})
    client.track(event_name="b", user_id="u1", properties={"x": math.inf})
    assert client.flush(timeout=5)
    sent = assert_valid_body(transport.requests[0].body)["events"]
    assert [e["properties"]["x"] for e in sent] == [1.5, None]


def paddings(clients: ClientFactory, count: int, body_size: int) -> list[int]:
    """Padding lengths that make ``count`` events (as tracked below) a body of ``body_size``."""
    # The events differ only in their padding: fixed-width names, the same user, an explicit
    # timestamp, and uuids of fixed length. One probe event tells the size of the rest.
    probe, transport = clients()
    probe.track(event_name="e0000", user_id="u1", properties={"pad": ""}, timestamp=TIMESTAMP)
    assert probe.flush(timeout=5)
    bare = len(transport.requests[0].body) - BODY_OVERHEAD
    room = body_size - BODY_OVERHEAD - (count - 1) - bare * count
    each, extra = divmod(room, count)
    return [each] * (count - 1) + [each + extra]


@pytest.mark.parametrize("over", [0, 1], ids=["exactly-at-the-limit", "one-byte-over"])
def test_a_batch_near_one_megabyte_is_split_only_when_over_the_limit(clients, over):
    pads = paddings(clients, 100, MAX_BODY_BYTES + over)
    client, transport = clients()
    for i, pad in enumerate(pads):
        client.track(
            event_name=f"e{i:04d}", user_id="u1", properties={"pad": "x" * pad}, timestamp=TIMESTAMP
        )
    assert client.flush(timeout=10)
    sizes = [len(r.body) for r in transport.requests]
    sent = [n for r in transport.requests for n in names(r)]
    assert sent == [f"e{i:04d}" for i in range(100)]
    assert all(size <= MAX_BODY_BYTES for size in sizes), sizes
    if over:
        # packed as full as the limit allows: 99 events, then the last one
        assert [len(r.json()["events"]) for r in transport.requests] == [99, 1], sizes
    else:
        assert sizes == [MAX_BODY_BYTES]
    every = [e["uuid"] for r in transport.requests for e in strict_json(r.body)["events"]]
    assert len(set(every)) == 100
    assert client.stats.delivered == 100
    assert client.stats.dropped == 0


def test_uuids_are_kept_when_a_rejected_batch_is_split(clients):
    def handler(request: Request) -> Response:
        if "poison" in names(request):
            return Response(400, {}, b'{"message":"invalid event"}')
        return ok(request)

    client, transport = clients(handler)
    for i in range(10):
        client.track(event_name="poison" if i == 6 else f"good{i}", user_id="u1")
    assert client.flush(timeout=5)
    first = {e["eventName"]: e["uuid"] for e in strict_json(transport.requests[0].body)["events"]}
    assert len(first) == 10
    seen = uuids_by_name(transport.requests)
    assert all(seen[name] == {first[name]} for name in first)
    assert client.stats.delivered == 9


@pytest.mark.parametrize("batch", ["together", "event-by-event", "over-the-limit"])
def test_a_retry_sends_the_same_bytes_whichever_way_the_batch_was_encoded(clients, caplog, batch):
    caplog.set_level(logging.WARNING, logger="outlit")
    failures = [2]

    def handler(request: Request) -> Response:
        if failures[0]:
            failures[0] -= 1
            return Response(503)
        return ok(request)

    client, transport = clients(handler)
    count = 30 if batch == "over-the-limit" else 8
    for i in range(count):
        props: dict[str, Any] = {"i": i, "when": dt.date(2024, 1, 1)}
        if batch == "event-by-event" and i == 3:
            props["thing"] = Opaque()
        if batch == "over-the-limit":
            props["blob"] = "x" * 50_000
        client.track(event_name=f"e{i}", user_id="u1", properties=props)
    assert client.flush(timeout=5)
    bodies = [r.body for r in transport.requests]
    assert bodies[0] == bodies[1] == bodies[2]
    seen = uuids_by_name(transport.requests)
    assert sorted(seen) == sorted(f"e{i}" for i in range(count))
    assert all(len(ids) == 1 for ids in seen.values())
    assert client.stats.delivered == count
    # the odd value is encoded (and warned about) once, not again for each attempt
    assert len(warnings(caplog)) == (1 if batch == "event-by-event" else 0)


def test_events_are_frozen_once_a_send_failed(clients):
    # Nested values are shared with the caller (properties are copied one level deep). After a
    # failed attempt the events wait as bytes, so a later change does not reach the retries.
    shared = ["first"]
    attempts = [0]

    def handler(request: Request) -> Response:
        attempts[0] += 1
        if attempts[0] == 2:
            shared.append("changed later")
        if attempts[0] <= 2:
            return Response(503)
        return ok(request)

    client, transport = clients(handler)
    client.track(event_name="e", user_id="u1", properties={"items": shared})
    client.track(event_name="f", user_id="u1")
    assert client.flush(timeout=5)
    bodies = [r.body for r in transport.requests]
    assert len(bodies) == 3
    assert bodies[0] == bodies[1] == bodies[2]
    assert strict_json(bodies[2])["events"][0]["properties"] == {"items": ["first"]}
