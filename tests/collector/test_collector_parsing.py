"""Request bodies read two ways: orjson for the SDK's compact spelling, the stdlib for the rest.

Whichever way a body is read, the answer, the accepted events and the original text
of each event must be the same; these tests compare both readings of the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from collector_helpers import TS, billing, custom, identify, stage
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from outlit._collector import contract
from outlit._collector.contract import ValidationResult, validate_request

orjson = pytest.importorskip("orjson")


@contextmanager
def _stdlib_only() -> Iterator[None]:
    saved = contract._orjson
    contract._orjson = None
    try:
        yield
    finally:
        contract._orjson = saved


def _both_readings(data: bytes) -> tuple[ValidationResult, ValidationResult]:
    fast = validate_request(data)
    with _stdlib_only():
        slow = validate_request(data)
    return fast, slow


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


SDK_EVENTS = [custom(uuid="u1"), identify(uuid="u2"), stage(uuid="u3"), billing(uuid="u4")]

# (body, whether orjson's reading is used)
BODIES = {
    "orjson's own output": (orjson.dumps({"source": "server", "events": SDK_EVENTS}), True),
    "compact stdlib output": (_compact({"source": "server", "events": SDK_EVENTS}), True),
    "raw UTF-8 text": (
        _compact({"source": "server", "events": [custom(eventName="café ☕")]}),
        True,
    ),
    "other top-level keys first": (
        _compact({"visitorId": "v", "source": "client", "events": [custom()]}),
        True,
    ),
    "a refused event among good ones": (
        _compact({"source": "server", "events": [custom(), custom(eventName=""), identify()]}),
        True,
    ),
    "events that are not objects": (_compact({"source": "server", "events": [1, "x", []]}), True),
    "no events": (_compact({"source": "server", "events": []}), True),
    "events not an array": (_compact({"source": "server", "events": {}}), True),
    "spaces after separators": (
        json.dumps({"source": "server", "events": SDK_EVENTS}).encode(),
        False,
    ),
    "escaped non-ASCII": (
        json.dumps({"source": "server", "events": [custom(eventName="café")]}).encode(),
        False,
    ),
    "escaped slash": (
        b'{"source":"server","events":[{"type":"custom","timestamp":1,"url":"a\\/b","path":"/",'
        b'"eventName":"e","email":"a@b"}]}',
        False,
    ),
    "integer past 64 bits": (
        _compact({"source": "server", "events": [custom(properties={"n": 2**64})]}),
        False,
    ),
    "negative zero": (
        b'{"source":"server","events":[{"type":"custom","timestamp":1,"url":"u","path":"/",'
        b'"eventName":"e","email":"a@b","properties":{"n":-0}}]}',
        False,
    ),
    "exponent spelled 1E5": (
        b'{"source":"server","events":[{"type":"custom","timestamp":1,"url":"u","path":"/",'
        b'"eventName":"e","email":"a@b","properties":{"n":1E5}}]}',
        False,
    ),
    "repeated key in an event": (
        b'{"source":"server","events":[{"type":"custom","timestamp":1,"url":"u","path":"/",'
        b'"eventName":"e","email":"a@b","email":"c@d"}]}',
        False,
    ),
    "events given twice": (
        b'{"source":"server","events":[{"type":"identify"}],"events":[{"type":"custom",'
        b'"timestamp":1,"url":"u","path":"/","eventName":"e","email":"a@b"}]}',
        False,
    ),
    "lone surrogate escape": (
        b'{"source":"server","events":[{"type":"custom","timestamp":1,"url":"u","path":"/",'
        b'"eventName":"\\ud800","email":"a@b"}]}',
        False,
    ),
    "nesting deeper than orjson writes": (
        b'{"source":"server","events":[{"type":"custom","timestamp":1,"url":"u","path":"/",'
        b'"eventName":"e","email":"a@b","properties":{"n":' + b"[" * 300 + b"]" * 300 + b"}}]}",
        False,
    ),
    "NaN": (b'{"source":"server","events":[{"n":NaN}]}', False),
    "trailing newline": (_compact({"source": "server", "events": [custom()]}) + b"\n", False),
    "byte order mark": (
        b"\xef\xbb\xbf" + _compact({"source": "server", "events": [custom()]}),
        False,
    ),
    "not UTF-8": (b'{"source":"server","events":["\xff"]}', False),
    "a top-level array": (b"[1]", False),
}


@pytest.mark.parametrize(("data", "fast"), list(BODIES.values()), ids=list(BODIES))
def test_both_readings_of_a_body_agree(data: bytes, fast: bool) -> None:
    with_orjson, stdlib = _both_readings(data)
    assert with_orjson == stdlib
    assert (contract._parse_compact(data) is not None) is fast


def test_compact_reading_keeps_each_events_text_as_sent() -> None:
    data = _compact({"source": "server", "events": [custom(eventName="café"), identify()]})
    result = validate_request(data)
    assert result.status == 200
    assert result.raw == [
        _compact(custom(eventName="café")).decode(),
        _compact(identify()).decode(),
    ]


def test_body_nested_past_the_recursion_limit_is_400() -> None:
    data = (
        b'{"source":"server","events":[{"type":"custom","timestamp":1,"url":"u","path":"/",'
        b'"eventName":"e","email":"a@b","properties":{"n":'
        + b"[" * 100_000
        + b"]" * 100_000
        + b"}}]}"
    )
    with_orjson, stdlib = _both_readings(data)
    assert with_orjson == stdlib
    assert with_orjson.status == 400
    assert "nested too deeply" in with_orjson.body["message"]


# -- property: any body, in any spelling, reads the same both ways ------------------

_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
_event_keys = st.sampled_from(
    [
        "type",
        "timestamp",
        "url",
        "path",
        "uuid",
        "eventName",
        "email",
        "userId",
        "customerId",
        "customerDomain",
        "domain",
        "properties",
        "stage",
        "status",
        "extra",
    ]
)
_events = st.one_of(
    st.sampled_from(
        [custom(), identify(), stage(), billing(), {"type": "custom", "timestamp": TS}]
    ),
    st.dictionaries(_event_keys, _json_values, max_size=6),
    _json_values,
).flatmap(
    lambda event: st.dictionaries(_event_keys, _json_values, max_size=2).map(
        lambda extra: {**event, **extra} if isinstance(event, dict) else event
    )
)
_bodies = st.fixed_dictionaries(
    {
        "source": st.sampled_from(["server", "client", "browser"]),
        "events": st.lists(_events, max_size=4),
    },
    optional={"visitorId": _json_values},
)


def _spell(value: Any, spelling: str) -> bytes:
    if spelling == "orjson":
        try:
            data: bytes = orjson.dumps(value)
        except TypeError:  # an integer past 64 bits; orjson cannot write it
            return _compact(value)
        return data
    if spelling == "compact":
        return _compact(value)
    if spelling == "ascii":
        return json.dumps(value, separators=(",", ":")).encode()
    if spelling == "spaced":
        return json.dumps(value).encode()
    return json.dumps(value, indent=1).encode()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_bodies, st.sampled_from(["orjson", "compact", "ascii", "spaced", "indented"]))
def test_any_body_reads_the_same_with_and_without_orjson(
    body: dict[str, Any], spelling: str
) -> None:
    data = _spell(body, spelling)
    with_orjson, stdlib = _both_readings(data)
    assert with_orjson == stdlib
    if with_orjson.status in (200, 207):
        # Each accepted event's text is a piece of the body, and reads back as the event.
        text = data.decode()
        for (_, event), raw in zip(with_orjson.accepted, with_orjson.raw, strict=True):
            assert raw in text
            assert json.loads(raw) == event
