"""Whatever a caller puts in properties, the worker sends strict JSON and never crashes.

Checked on both encoders: orjson (the default when installed) and the stdlib fallback
(``encode_event(event, use_orjson=False)``), and end to end through ``track()``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import logging
import math
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from outlit._encoding import encode_event

try:
    from ._helpers import ClientFactory, assert_valid_body, client_factory, strict_json
except ImportError:
    from _helpers import ClientFactory, assert_valid_body, client_factory, strict_json

ENCODERS = pytest.mark.parametrize("use_orjson", [True, False], ids=["orjson", "stdlib"])


@pytest.fixture
def clients() -> Iterator[ClientFactory]:
    with client_factory() as factory:
        yield factory


def encode_value(value: Any, use_orjson: bool) -> Any:
    """Encode ``{"properties": {"v": value}}`` and return what ``v`` became on the wire."""
    event = {"type": "custom", "eventName": "e", "properties": {"v": value}}
    return strict_json(encode_event(event, use_orjson=use_orjson))["properties"]["v"]


def encode_strict(event: Any, use_orjson: bool) -> Any:
    data = encode_event(event, use_orjson=use_orjson)
    assert isinstance(data, bytes)
    return strict_json(data)


class Color(enum.Enum):
    RED = "red"


class Priority(enum.IntEnum):
    HIGH = 1


@dataclasses.dataclass
class Invoice:
    number: str
    amount: decimal.Decimal
    issued: dt.date


class ModelLike:
    """A tiny stand-in for a pydantic model: anything with ``model_dump(mode="json")``."""

    def model_dump(self, mode: str = "python") -> dict[str, Any]:
        return {"mode": mode, "plan": "pro"}


class Opaque:
    def __str__(self) -> str:
        return "<opaque thing>"


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    __repr__ = __str__


# -- known value types -----------------------------------------------------------------------


@ENCODERS
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            dt.datetime(2024, 1, 28, 1, 2, 3, 456789, tzinfo=dt.timezone.utc),
            "2024-01-28T01:02:03.456789+00:00",
        ),
        (
            dt.datetime(2024, 1, 28, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            "2024-01-28T00:00:00+02:00",
        ),
        (dt.datetime(2024, 1, 28, 1, 2, 3), "2024-01-28T01:02:03"),
        (dt.date(2024, 2, 15), "2024-02-15"),
        (dt.time(13, 45), "13:45:00"),
        (decimal.Decimal("99.5"), 99.5),
        (decimal.Decimal("100"), 100),
        (decimal.Decimal("NaN"), None),
        (decimal.Decimal("-Infinity"), None),
        (uuid.UUID(int=5), "00000000-0000-0000-0000-000000000005"),
        (Color.RED, "red"),
        (Priority.HIGH, 1),
        ({3, 1, 2}, [1, 2, 3]),
        (frozenset({"b", "a"}), ["a", "b"]),
        ((1, "a", None), [1, "a", None]),
        (
            Invoice("INV-1", decimal.Decimal("12.5"), dt.date(2024, 1, 1)),
            {"number": "INV-1", "amount": 12.5, "issued": "2024-01-01"},
        ),
        (ModelLike(), {"mode": "json", "plan": "pro"}),
        (b"pdf", "pdf"),
    ],
    ids=lambda v: type(v).__name__,
)
def test_common_python_values_become_their_json_form(value, expected, use_orjson):
    assert encode_value(value, use_orjson) == expected


@ENCODERS
def test_a_set_of_unorderable_values_still_becomes_a_list(use_orjson):
    assert sorted(encode_value({1, "a"}, use_orjson), key=str) == [1, "a"]


@ENCODERS
def test_pydantic_models_use_their_json_mode(use_orjson):
    pydantic = pytest.importorskip("pydantic", reason="pydantic is optional")

    class Plan(pydantic.BaseModel):
        name: str
        price: decimal.Decimal
        starts: dt.datetime

    plan = Plan(
        name="pro",
        price=decimal.Decimal("9.90"),
        starts=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
    )
    assert encode_value(plan, use_orjson) == plan.model_dump(mode="json")


@ENCODERS
def test_arbitrary_objects_become_their_str_with_a_warning(use_orjson, caplog):
    caplog.set_level(logging.WARNING, logger="outlit")
    assert encode_value(Opaque(), use_orjson) == "<opaque thing>"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "Opaque" in warnings[0].getMessage()


@ENCODERS
def test_an_object_whose_str_raises_still_encodes(use_orjson, caplog):
    caplog.set_level(logging.WARNING, logger="outlit")
    value = encode_value([Unprintable(), 1], use_orjson)
    assert value[1] == 1
    assert isinstance(value[0], str)


# -- values that JSON cannot hold --------------------------------------------------------------


@ENCODERS
def test_nan_and_infinities_become_null(use_orjson):
    props = {
        "nan": math.nan,
        "inf": math.inf,
        "ninf": -math.inf,
        "nested": [1.5, math.nan, {"x": math.inf}],
    }
    wire = encode_strict({"type": "custom", "properties": props}, use_orjson)["properties"]
    assert wire == {"nan": None, "inf": None, "ninf": None, "nested": [1.5, None, {"x": None}]}


@ENCODERS
def test_lone_surrogates_in_values_and_keys_never_raise(use_orjson):
    event = {"type": "custom", "properties": {"bad\ud800key": "a\udfffb", "ok": "é✓"}}
    props = encode_strict(event, use_orjson)["properties"]
    assert props["ok"] == "é✓"
    assert len(props) == 2
    for key, value in props.items():
        key.encode("utf-8")  # valid UTF-8 once decoded: no surrogates left
        value.encode("utf-8")


@ENCODERS
def test_non_string_keys_become_strings(use_orjson):
    props = {
        1: "int",
        2.5: "float",
        None: "none",
        False: "bool",
        (1, 2): "tuple",
        Color.RED: "enum",
    }
    wire = encode_strict({"type": "custom", "properties": props}, use_orjson)["properties"]
    assert all(isinstance(key, str) for key in wire)
    assert sorted(wire.values()) == sorted(props.values())
    assert wire["1"] == "int"


@ENCODERS
def test_cycles_never_raise(use_orjson):
    loop: dict[str, Any] = {"name": "loop"}
    loop["self"] = loop
    chain: list[Any] = [1]
    chain.append(chain)
    props = encode_strict({"type": "custom", "properties": {"d": loop, "l": chain}}, use_orjson)[
        "properties"
    ]
    assert props["d"]["name"] == "loop"
    assert props["l"][0] == 1


@ENCODERS
def test_the_same_object_twice_is_not_mistaken_for_a_cycle(use_orjson):
    shared = {"a": 1}
    props = encode_strict(
        {"type": "custom", "properties": {"x": shared, "y": [shared, shared]}}, use_orjson
    )["properties"]
    assert props == {"x": {"a": 1}, "y": [{"a": 1}, {"a": 1}]}


@ENCODERS
@pytest.mark.parametrize("depth", [40, 300, 5_000])
def test_deep_nesting_never_raises(use_orjson, depth):
    deep: list[Any] = []
    inner = deep
    for _ in range(depth):
        inner.append([])
        inner = inner[0]
    wire = encode_strict({"type": "custom", "properties": {"deep": deep, "ok": 1}}, use_orjson)
    assert wire["properties"]["ok"] == 1


@ENCODERS
@pytest.mark.parametrize(
    "value",
    [2**64, -(2**63) - 1, 10**400, 10**5000, decimal.Decimal("1E+5000")],
    ids=["2**64", "below-int64", "400-digits", "5000-digits", "decimal-1E+5000"],
)
def test_huge_integers_never_raise(use_orjson, value):
    wire = encode_strict({"type": "custom", "properties": {"n": value, "ok": 1}}, use_orjson)
    assert wire["properties"]["ok"] == 1


@ENCODERS
def test_integers_beyond_64_bits_keep_their_value(use_orjson):
    assert encode_value(2**64 + 1, use_orjson) == 2**64 + 1


@ENCODERS
def test_output_is_compact_utf8(use_orjson):
    data = encode_event({"type": "custom", "properties": {"name": "Zoë"}}, use_orjson=use_orjson)
    assert data == '{"type":"custom","properties":{"name":"Zoë"}}'.encode()


class _UnreadableMapping(Mapping[str, Any]):
    """A mapping of the app's own that raises when read (a lazy settings object, say)."""

    def __getitem__(self, key: str) -> Any:
        raise RuntimeError("settings store down")

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("settings store down")

    def __len__(self) -> int:
        return 1

    def __str__(self) -> str:
        return "<lazy settings>"


@ENCODERS
def test_a_mapping_that_raises_when_read_is_sent_as_its_str_and_the_rest_goes(use_orjson, caplog):
    caplog.set_level(logging.WARNING, logger="outlit")
    props = {"settings": _UnreadableMapping(), "ok": 1}
    wire = encode_strict({"type": "custom", "properties": props}, use_orjson)
    assert wire["properties"] == {"settings": "<lazy settings>", "ok": 1}
    (said,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "_UnreadableMapping" in said


@ENCODERS
def test_an_integer_too_long_for_json_is_said(use_orjson, caplog):
    caplog.set_level(logging.WARNING, logger="outlit")
    wire = encode_strict({"type": "custom", "properties": {"n": 10**5000, "ok": 1}}, use_orjson)
    assert wire["properties"] == {"n": None, "ok": 1}
    (said,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "(int)" in said and "null for an int too long" in said


# -- end to end through track() ------------------------------------------------------------


def test_unserializable_property_is_sent_as_str_and_the_event_still_arrives(clients, caplog):
    caplog.set_level(logging.WARNING, logger="outlit")
    client, transport = clients()
    client.track(event_name="before", email="a@x.com")
    client.track(event_name="odd", email="a@x.com", properties={"thing": Opaque(), "n": math.nan})
    client.track(event_name="after", email="a@x.com")
    assert client.flush(timeout=5)
    events = transport.events
    assert [e["eventName"] for e in events] == ["before", "odd", "after"]
    assert events[1]["properties"] == {"thing": "<opaque thing>", "n": None}
    for request in transport.requests:
        assert_valid_body(request.body)
    assert any("Opaque" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "poison",
    [10**5000, "deep"],
    ids=["5000-digit-int", "5000-deep-list"],
)
def test_a_value_the_encoder_chokes_on_loses_no_other_event(clients, caplog, poison):
    if poison == "deep":
        poison = []
        inner = poison
        for _ in range(5_000):
            inner.append([])
            inner = inner[0]
    caplog.set_level(logging.WARNING, logger="outlit")
    client, transport = clients()
    client.track(event_name="before", email="a@x.com")
    client.track(event_name="odd", email="a@x.com", properties={"v": poison})
    client.track(event_name="after", email="a@x.com")
    assert client.flush(timeout=5)
    names = [e["eventName"] for e in transport.events]
    assert "before" in names
    assert "after" in names
    stats = client.stats
    # the odd event is either delivered (in some form) or counted as dropped, never just lost
    assert stats.delivered + stats.dropped == 3, stats
    assert not [r for r in caplog.records if "unexpected error" in r.getMessage()]


# -- property test ---------------------------------------------------------------------------

SURROGATES = st.characters(categories=["Cs"])
TEXT = st.text(max_size=12) | st.lists(st.characters() | SURROGATES, max_size=8).map("".join)
# Beyond 64 bits (orjson's limit) up to 4,000 digits; longer ones are tested above by hand,
# since Python cannot even repr() an int of more than 4,300 digits in a failure report.
INTS = st.integers() | st.integers(min_value=-(10**4000), max_value=10**4000)
FLOATS = st.floats(allow_nan=True, allow_infinity=True)
TIMES = st.datetimes(
    timezones=st.sampled_from(
        [None, dt.timezone.utc, dt.timezone(dt.timedelta(hours=5, minutes=30))]
    )
)
DECIMALS = st.decimals(allow_nan=True, allow_infinity=True, places=None)


class Colour(enum.Enum):
    RED = "red"
    NESTED = (1.5, float("nan"))  # an enum whose value itself needs care


@dataclasses.dataclass
class Point:
    x: Any
    y: Any


class Unconvertible:
    """Nothing converts it: it goes out as its str(), with a warning."""

    def __str__(self) -> str:
        return "opaque\ud800"  # and that str() holds a lone surrogate


ODD = (
    st.sampled_from([Colour.RED, Colour.NESTED])
    | st.uuids()
    | st.binary(max_size=8)
    | st.builds(Unconvertible)
    | st.builds(Point, FLOATS, TEXT)
)
SCALARS = st.none() | st.booleans() | INTS | FLOATS | TEXT | TIMES | DECIMALS | ODD
HASHABLE = st.none() | st.booleans() | st.integers() | TEXT | st.uuids()
KEYS = TEXT | st.integers()
PROPERTY_VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(KEYS, children, max_size=4)
        | st.lists(children, max_size=3).map(tuple)
        | st.sets(HASHABLE, max_size=4)
        | st.frozensets(HASHABLE, max_size=3)
    ),
    max_leaves=12,
)
PROPERTIES = st.dictionaries(KEYS, PROPERTY_VALUES, max_size=5)


def test_any_nested_properties_reach_the_wire_as_strict_json(clients):
    client, transport = clients(max_requests_per_second=100_000)
    errors: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.ERROR:
                errors.append(record)

    handler = Collect()
    logger = logging.getLogger("outlit")
    logger.addHandler(handler)
    sent = 0
    try:

        @settings(
            max_examples=200,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            database=None,
        )
        @given(properties=PROPERTIES)
        def check(properties: dict[Any, Any]) -> None:
            nonlocal sent
            client.track(event_name="fuzzed", user_id="u1", properties=properties)
            sent += 1
            assert client.flush(timeout=5)
            assert not errors, [r.getMessage() for r in errors]
            body = assert_valid_body(transport.requests[-1].body)
            (event,) = body["events"]
            assert isinstance(event["properties"], dict)
            assert len(event["properties"]) <= len(properties)
            assert len(transport.requests) == sent  # one request per example: nothing lost

        check()
    finally:
        logger.removeHandler(handler)
    assert client.stats.delivered == sent
