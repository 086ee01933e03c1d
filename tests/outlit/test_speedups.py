"""The compiled fast paths (outlit/_speedups.c) against the pure-Python functions they stand in
for: for every input, the same result, the same error, the same log, or a hand-over to Python.

The rest of the suite runs with the compiled module when it is built; `make test` also runs the
core's unit tests with OUTLIT_PURE_PYTHON=1, so both implementations are covered throughout.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import functools
import gc
import hashlib
import itertools
import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import time
import types
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

import outlit
from outlit import MAX_BODY_BYTES, Outlit, _client, _compiled, _events, _tracker
from outlit._encoding import encode_event
from outlit._queue import BODY_OVERHEAD, EventQueue, FlushMarker, build_body

try:
    from ._helpers import ClientFactory, assert_valid_body
except ImportError:
    from _helpers import ClientFactory, assert_valid_body

speedups = _compiled.speedups
SOURCE = Path(outlit.__file__).with_name("_speedups.c")


class _Color(enum.Enum):
    RED = "red"


class _Str(str):
    pass


class _Int(int):
    pass


class _Dict(dict):  # type: ignore[type-arg]
    pass


def _compiler_on_path() -> str | None:
    cc = sysconfig.get_config_var("CC")
    return shutil.which(shlex.split(cc)[0]) if cc else None


needs_compiled = pytest.mark.skipif(
    speedups is None,
    reason="the compiled module is not in use (OUTLIT_PURE_PYTHON set, or not built): "
    "nothing to compare the Python functions with",
)


@needs_compiled
def test_the_stub_describes_the_compiled_module_exactly() -> None:
    # outlit/_speedups.pyi against the built module: every name, parameter kind and name.
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "outlit._speedups"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MYPY_CACHE_DIR": os.devnull},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout


def test_the_compiled_module_is_built_where_a_compiler_is() -> None:
    if os.environ.get(_compiled.ENV_PURE_PYTHON, "").strip() not in ("", "0"):
        pytest.skip("OUTLIT_PURE_PYTHON is set: this run checks the pure-Python paths")
    if _compiler_on_path() is None:
        pytest.skip("no C compiler on this machine: outlit installs as pure Python here")
    assert speedups is not None, _compiled.describe()
    assert _compiled.describe() == "compiled"


@needs_compiled
def test_the_compiled_module_is_built_from_the_current_source() -> None:
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    assert speedups.source_digest == digest, (
        "outlit/_speedups.c changed since the module was compiled: rebuild it with "
        "`pip install -e .` (make does it when the file changes)"
    )


def test_pure_python_mode_uses_no_compiled_code() -> None:
    code = (
        "import types, outlit, outlit._compiled as c, outlit._events as e, outlit._tracker as t\n"
        "assert c.speedups is None, c.speedups\n"
        "assert outlit._client._queue_track is None\n"
        "assert e.custom_event is e.custom_event_python\n"
        "assert t._read_identity is t._identity_args\n"
        "print(c.describe())\n"
    )
    env = {**os.environ, _compiled.ENV_PURE_PYTHON: "1"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "pure Python (OUTLIT_PURE_PYTHON is set)"


@needs_compiled
def test_a_module_compiled_for_another_python_is_named_as_such(tmp_path) -> None:
    # A layer built with one Python and run with another (pip install -t on 3.10, run on
    # 3.13): the fallback is pure Python, and the doctor must not blame a missing compiler.
    package = tmp_path / "outlit"
    shutil.copytree(
        Path(outlit.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__")
    )
    for built in package.glob("_speedups.*.so"):
        built.unlink()
    shutil.copy(speedups.__file__, package / "_speedups.cpython-39-x86_64-linux-gnu.so")
    # -S: no site-packages, where an editable install's import hook would find the checkout.
    code = (
        f"import sys; sys.path.insert(0, {str(tmp_path)!r}); "
        "import outlit._compiled as c; print(c.describe())"
    )
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", _compiled.ENV_PURE_PYTHON)
    }
    done = subprocess.run(
        [sys.executable, "-S", "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "pure Python (compiled for another Python: _speedups.cpython-39-x86_64-linux-gnu.so; "
        "install with this one to compile for it)"
    )
    for built in package.glob("_speedups.*.so"):
        built.unlink()
    done = subprocess.run(
        [sys.executable, "-S", "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip().startswith("pure Python (not compiled at install: no C compiler")


# -- custom_event ------------------------------------------------------------------------------

IDENTITY_VALUES = [None, "", " \u2003", "u-1"]
NAMES = ["report_exported", "é"]
PROPERTIES = [None, {}, {"plan": "pro", "n": 1}]
TIMESTAMPS = [1764230000.123, 1764230000123, 0.0, 1e12]


@needs_compiled
def test_custom_event_matches_python() -> None:
    # Every combination: blank and usable values in each identity slot, and every kind of
    # timestamp the queue holds.
    mismatches = []
    for ids in itertools.product(IDENTITY_VALUES, repeat=5):
        for name, properties, ts in itertools.product(NAMES, PROPERTIES, TIMESTAMPS):
            item = (name, *ids, properties, ts)
            compiled = _outcome(speedups.custom_event, item)
            python = _outcome(_events.custom_event_python, item)
            if compiled != python:
                mismatches.append((item, compiled, python))
    assert mismatches == []


@needs_compiled
@pytest.mark.parametrize(
    "item",
    [
        ("e", None, None, None, None, None, None, 1.0),  # no identity: "server://None"
        ("e", "", "", "", "", "", None, 1.0),
        ("e", 5, None, None, None, None, None, 1.0),  # not a str: Python's business
        ("e", "a", "b", "c", "d", "f", None, float("nan")),  # raises in both
        ("e", "a", None, None, None, None, None, "not a number"),
        ("e", "a", None, None, None, None, None),  # too short
        ["e", "a", None, None, None, None, None, 1.0],  # a list, not a tuple
    ],
)
def test_custom_event_hands_unusual_items_to_python(item: Any) -> None:
    assert _outcome(speedups.custom_event, item) == _outcome(_events.custom_event_python, item)


def _outcome(function: Any, item: Any) -> Any:
    try:
        event = function(item, "0f8fad5b-d9cb-469f-a165-70867728950e")
    except Exception as exc:
        return ("raised", type(exc), str(exc))
    return ("built", list(event.items()))  # key order included: it is the wire's


# -- take_batch --------------------------------------------------------------------------------

RANDOM = bytes(
    (7 * n + 3) % 256 for n in range(16 * 64)
)  # the compiled path's uuids come from these bytes


def _uuid_from(random: bytes, index: int) -> str:
    return str(uuid.UUID(bytes=random[16 * index : 16 * index + 16], version=4))


def _stdlib_bytes(event: Any) -> bytes:
    """What the standard library writes for a wire dict, strictly: the compiled path's oracle."""
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def _take_one(item: Any, random: bytes = RANDOM) -> tuple[bytes | None, list[Any]]:
    """(the bytes the compiled take_batch gives item, [item] when it leaves it to Python)."""
    queue = EventQueue()
    queue.append(item)
    batch = speedups.take_batch(queue, 100, MAX_BODY_BYTES, BODY_OVERHEAD, FlushMarker, random)
    assert not queue
    (taken,) = batch
    if type(taken) is bytes:
        return taken, []
    assert taken is item
    return None, [item]


TAKE_NAMES = ["report_exported", "é ☃ 😀", 'quote" back\\ slash', "\n\r\t\b\f \x00\x01\x1f \x7f"]
PLAIN_VALUES: list[Any] = [
    None, True, False, 0, -1, 2**63 - 1, -(2**63), 1.5, -0.0, 1e16, 1e-7, 5e-324,
    1.7976931348623157e308, 0.1 + 0.2, "", "plain", "é ☃ 😀 \u2028", '"\\/\x00\x1f\x7f',
    "x" * 1000, [], {}, (), [1, "two", 3.0, None], ("a", ("b",)), {"nested": {"deeper": [{}]}},
    {"é": 1, "": 2, '"': 3},
]  # fmt: skip
ODD_VALUES: list[Any] = [
    float("nan"), float("inf"), -float("inf"), 2**63, -(2**63) - 1, 10**30,
    datetime.datetime(2026, 11, 27, 12, 0), datetime.date(2026, 11, 27), decimal.Decimal("1.5"),
    uuid.UUID(int=1), _Color.RED, _Str("subclass"), _Int(3), _Dict(a=1), [_Str("in a list")],
    {1: "int key"}, {None: "none key"}, {_Str("k"): 1}, "lone \ud800 surrogate",
    {"lone \udfff": "key"}, {1, 2}, b"bytes", object(),
]  # fmt: skip


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


@needs_compiled
def test_take_batch_writes_what_the_standard_library_writes() -> None:
    # Every identity mix, names that need escapes, both kinds of timestamp: the compiled bytes
    # are the standard library's strict encoding of custom_event_python's wire dict, byte for
    # byte; the items it hands to Python are exactly those without an identity for the url.
    mismatches, handed_over, expected_handed = [], [], []
    uuid_text = _uuid_from(RANDOM, 0)
    for ids in itertools.product(IDENTITY_VALUES, repeat=5):
        for name, ts in itertools.product(TAKE_NAMES, TIMESTAMPS):
            item = (name, *ids, {"plan": "pro", "seats": 3}, ts)
            encoded, handed = _take_one(item)
            if not any(ids):
                expected_handed.append(item)
            if handed:
                handed_over.append(item)
                continue
            expected = _stdlib_bytes(_events.custom_event_python(item, uuid_text))
            if encoded != expected:
                mismatches.append((item, encoded, expected))
    assert mismatches == []
    assert handed_over == expected_handed


@needs_compiled
@pytest.mark.parametrize("value", [*PLAIN_VALUES, _nested(20)], ids=repr)
def test_take_batch_writes_plain_property_values_itself(value: Any) -> None:
    for properties in ({"value": value}, {"a": 1, "value": value, "z": [value, {"v": value}]}):
        item = ("e", None, "u-1", None, None, None, properties, 1764230000.5)
        encoded, handed = _take_one(item)
        assert handed == []
        expected = _stdlib_bytes(_events.custom_event_python(item, _uuid_from(RANDOM, 0)))
        assert encoded == expected
        assert json.loads(encoded) == json.loads(encode_event(json.loads(expected)))


@needs_compiled
@pytest.mark.parametrize(
    "value",
    [
        *ODD_VALUES,
        _nested(40),
        "x" * (MAX_BODY_BYTES + 1),
        {"a": "x" * (MAX_BODY_BYTES // 2), "b": "x" * (MAX_BODY_BYTES // 2)},  # over, together
    ],
    ids=lambda value: repr(value)[:40],
)
def test_take_batch_hands_other_values_to_python(value: Any) -> None:
    # NaN, long ints, datetimes, subclasses, keys that are not str, lone surrogates, deep
    # nesting, an event over the body limit: Python converts them, warns, or drops the event.
    item = ("e", None, "u-1", None, None, None, {"before": 1, "value": value}, 1764230000.5)
    encoded, handed = _take_one(item)
    assert encoded is None and handed == [item]


@needs_compiled
@pytest.mark.parametrize(
    "item",
    [
        ("e", 5, None, None, None, None, None, 1.0),  # not a str
        ("e", "a", None, None, None, None, None, float("nan")),
        ("e", "a", None, None, None, None, None, 1e300),  # no int64 milliseconds
        ("e", "a", None, None, None, None, None, 2**70),
        ("e", "a", None, None, None, None, None, "not a number"),
        ("e", "a", None, None, None, None, _Dict(a=1), 1.0),
        (_Str("e"), "a", None, None, None, None, None, 1.0),
        ("e", "a", None, None, None, None, None),  # too short
    ],
    ids=repr,
)
def test_take_batch_hands_unusual_tuples_to_python(item: Any) -> None:
    assert _take_one(item) == (None, [item])


@needs_compiled
def test_take_batch_takes_a_mixed_queue_as_the_python_one_does(factory: ClientFactory) -> None:
    marker = FlushMarker()
    odd = ("odd", None, "u-1", None, None, None, {"when": datetime.date(2026, 11, 27)}, 1.5)
    items: list[Any] = [
        ("first", "a@x.io", None, None, None, None, {"n": 1}, 1.25),
        odd,
        {"type": "identify", "email": "a@x.io", "timestamp": 2.5, "traits": {"plan": "pro"}},
        b'{"type":"custom","eventName":"put back"}',
        ("second", None, None, None, "c1", None, None, 3000),
        marker,
        ("after the marker", None, "u-1", None, None, None, None, 4.0),
    ]
    results = []
    for compiled in (True, False):
        worker = factory()[0]._worker
        worker._uuids = [f"python-{n}" for n in range(10, 0, -1)]  # taken from the end
        queue = EventQueue()
        queue.extend(items)
        if compiled:
            taken = speedups.take_batch(
                queue, 100, MAX_BODY_BYTES, BODY_OVERHEAD, FlushMarker, RANDOM
            )
        else:
            taken = queue.take_batch(100, MAX_BODY_BYTES)
        assert list(queue) == items[5:]  # the marker stays in front of what follows it
        handed = [item for item in taken if type(item) is not bytes]
        batch = [item if type(item) is bytes else worker._encode_item(item) for item in taken]
        results.append(([json.loads(encoded) for encoded in batch], handed))
    (compiled_events, compiled_handed), (python_events, python_handed) = results
    assert compiled_handed == [odd, items[2]]
    assert python_handed == [items[0], odd, items[2], items[4]]
    # The same events in the same order; the uuids come from RANDOM or from the worker's stock.
    assert [e.get("uuid") for e in compiled_events] == [
        _uuid_from(RANDOM, 0),
        "python-1",
        "python-2",
        None,
        _uuid_from(RANDOM, 1),
    ]
    for event in compiled_events + python_events:
        event.pop("uuid", None)
    assert compiled_events == python_events


@needs_compiled
def test_take_batch_keeps_the_body_under_the_limit_as_the_python_one_does() -> None:
    items = [(f"e{n}", None, "u-1", None, None, None, {"pad": "x" * 300}, 1.0) for n in range(5)]
    size = len(_take_one(items[0])[0] or b"")
    limit = BODY_OVERHEAD + 2 * size + 1  # room for two events and their comma
    queue = _queue_of(items)
    batch = speedups.take_batch(queue, 100, limit, BODY_OVERHEAD, FlushMarker, RANDOM)
    assert [json.loads(e)["eventName"] for e in batch] == ["e0", "e1"]
    # The third is encoded already: back in front as bytes, as EventQueue.take_batch leaves it.
    assert type(queue[0]) is bytes and json.loads(queue[0])["eventName"] == "e2"
    assert list(queue)[1:] == items[3:]
    assert len(build_body(batch)) <= limit


@needs_compiled
def test_take_batch_stops_at_max_events_and_hands_over_when_random_bytes_run_out() -> None:
    items = [(f"e{n}", None, "u-1", None, None, None, None, 1.0) for n in range(5)]
    queue = _queue_of(items)
    random = RANDOM[:32]  # two uuids' worth
    batch = speedups.take_batch(queue, 4, MAX_BODY_BYTES, BODY_OVERHEAD, FlushMarker, random)
    assert len(batch) == 4 and batch[2:] == items[2:4] and list(queue) == items[4:]
    assert [json.loads(e).get("uuid") for e in batch[:2]] == [
        _uuid_from(random, 0),
        _uuid_from(random, 1),
    ]


class _Loud:
    """A value whose conversion is the app's code: take_batch must not run it."""

    def __str__(self) -> str:
        raise AssertionError("the app's __str__ ran")

    def to_dict(self) -> dict[str, Any]:
        raise AssertionError("the app's to_dict ran")


class _LoudDict(dict):  # type: ignore[type-arg]
    def items(self) -> Any:
        raise AssertionError("the app's items() ran")

    def keys(self) -> Any:
        raise AssertionError("the app's keys() ran")

    def __iter__(self) -> Any:
        raise AssertionError("the app's __iter__ ran")


@needs_compiled
def test_take_batch_runs_no_code_of_the_apps_and_refuses_wrong_arguments() -> None:
    # The worker calls take_batch under the lock that queue_size and flush() take: code of the
    # app's that ran there (a to_dict() waiting on a lock a flushing thread holds) could
    # deadlock them. What only Python converts is taken as it is, for the worker to encode.
    odd = [
        ("loud", None, "u-1", None, None, None, {"value": _Loud()}, 1.0),
        ("loud", None, "u-1", None, None, None, _LoudDict(a=1), 1.0),
        ("loud", None, "u-1", None, None, None, {"nested": [{"value": _Loud()}]}, 1.0),
        {"type": "identify", "email": "a@x.io", "timestamp": 1.0, "traits": _LoudDict(a=1)},
    ]
    queue = _queue_of(odd)
    assert (
        speedups.take_batch(queue, 100, MAX_BODY_BYTES, BODY_OVERHEAD, FlushMarker, RANDOM) == odd
    )
    assert not queue
    with pytest.raises(TypeError):
        speedups.take_batch(queue, 100, MAX_BODY_BYTES, BODY_OVERHEAD, FlushMarker, [])
    with pytest.raises(TypeError):
        speedups.take_batch(queue, 100, MAX_BODY_BYTES, BODY_OVERHEAD, FlushMarker, _refuse, RANDOM)


def _queue_of(items: list[Any]) -> EventQueue:
    queue = EventQueue()
    queue.extend(items)
    return queue


def _refuse(item: Any) -> bytes:
    raise AssertionError(f"handed to Python: {item!r}")


@needs_compiled
def test_take_batch_keeps_no_reference_and_frees_what_it_takes() -> None:
    name, user, value = "refcounted_event", "refcounted-user", "refcounted-value"
    watched = (name, user, value)
    before = [sys.getrefcount(v) for v in watched]
    queue = EventQueue()
    for _ in range(20):
        queue.extend(
            (name, None, user, None, None, None, {"k": value, "l": [value]}, 1.0)
            for _ in range(100)
        )
        odd = (
            name,
            None,
            user,
            None,
            None,
            None,
            {"k": value, "d": datetime.date(2026, 1, 1)},
            1.0,
        )
        queue.append(odd)
        del odd
        batch = speedups.take_batch(
            queue, 1000, MAX_BODY_BYTES, BODY_OVERHEAD, FlushMarker, RANDOM * 2
        )
        assert len(batch) == 101 and not queue and type(batch[-1]) is tuple
    del batch
    assert [sys.getrefcount(v) for v in watched] == before
    # What goes back to the front (a flush marker, an event that did not fit) is held by the
    # queue alone afterwards.
    marker, encoded = FlushMarker(), b'{"put":"back"}'
    held = [sys.getrefcount(marker), sys.getrefcount(encoded)]
    for _ in range(100):
        queue.extend([encoded, encoded, marker])
        batch = speedups.take_batch(
            queue, 10, BODY_OVERHEAD + len(encoded), BODY_OVERHEAD, FlushMarker, RANDOM
        )
        assert batch == [encoded] and list(queue) == [encoded, marker]
        queue.clear()
    del batch
    assert [sys.getrefcount(marker), sys.getrefcount(encoded)] == held


@needs_compiled
def test_compiled_batches_pass_the_ingest_schema(factory: ClientFactory) -> None:
    client, transport = factory()
    for value in [*PLAIN_VALUES, *ODD_VALUES[:12]]:
        client.track(event_name="schema_check", user_id="u-1", properties={"value": value})
    client.track(event_name='escapes " \\ \n', email="é@x.io", properties={"é": "☃"})
    assert client.flush(timeout=5)
    events = [
        e for request in transport.requests for e in assert_valid_body(request.body)["events"]
    ]
    assert len(events) == len(PLAIN_VALUES) + 13
    assert len({e["uuid"] for e in events}) == len(events)


# -- identity_args -----------------------------------------------------------------------------

_ABSENT = object()
ANSWER_EXTRAS: list[dict[Any, Any]] = [{}, {"userId": "u"}, {"name": None}]


def _answers() -> Iterator[tuple[Any, ...]]:
    """Values for the five identity keys: every mix of absent, None, empty and usable, and
    values of other types (converted or refused by Python) beside absent and usable ones."""
    yield from itertools.product([_ABSENT, None, "", "u-1"], repeat=5)
    for email, user_id in itertools.product([_ABSENT, "u-1", 42, True, uuid.UUID(int=1)], repeat=2):
        yield (email, user_id, _ABSENT, 3.5 if email is True else _ABSENT, _ABSENT)


class _Answer(dict):  # type: ignore[type-arg]
    """A dict subclass: Python reads it, the compiled path hands it over."""


@needs_compiled
def test_identity_args_matches_python() -> None:
    mismatches = []
    for values in _answers():
        for extra, subclass in itertools.product(ANSWER_EXTRAS, (False, True)):
            answer = {
                key: value
                for key, value in zip(_tracker.IDENTITY_KEYS, values, strict=True)
                if value is not _ABSENT
            }
            answer.update(extra)
            found: Any = _Answer(answer) if subclass else answer
            compiled = _read(speedups.identity_args, found)
            python = _read(_tracker._identity_args, found)
            # The sentinels (no identity, failed) are told apart by identity, not by value.
            sentinel = python[0] is _tracker._NO_IDS or python[0] is _tracker._FAILED_IDS
            if compiled != python or (sentinel and compiled[0] is not python[0]):
                mismatches.append((found, compiled, python))
    assert mismatches == []


@needs_compiled
@pytest.mark.parametrize(
    "found",
    [
        types.MappingProxyType({"user_id": "u"}),
        ["user_id"],
        "user_id",
        {"userId": "u"},
        {"email": None, "name": None},
    ],
)
def test_identity_args_hands_other_answers_to_python(found: Any) -> None:
    compiled, compiled_log = _read(speedups.identity_args, found)
    python, python_log = _read(_tracker._identity_args, found)
    assert (compiled, compiled_log) == (python, python_log)


def _read(function: Any, found: Any) -> tuple[Any, list[str]]:
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    handler = Keep()
    logger = logging.getLogger("outlit")
    logger.addHandler(handler)
    try:
        try:
            result: Any = function(found)
        except Exception as exc:
            result = ("raised", type(exc), str(exc))
    finally:
        logger.removeHandler(handler)
    return result, records


# -- track -------------------------------------------------------------------------------------


class _Name(str):
    """A str subclass (as Django's SafeString): sent as a plain str, by Python."""


TRACK_NAMES = ["report_exported", "", " ", 5, None, _Name("n")]
TRACK_IDS = [None, "", " ", "u-1", 42, True, uuid.UUID(int=3), _Name("x")]
TRACK_PROPERTIES = [
    None,
    {},
    {"a": 1},
    types.MappingProxyType({"b": 2}),
    ["x"],
]
TRACK_TIMESTAMPS = [
    None,
    1764230000123,
    datetime.datetime(2026, 11, 27, tzinfo=datetime.timezone.utc),
    "soon",
]


@pytest.fixture(scope="module")
def started_clients() -> Any:
    factory = ClientFactory()
    compiled, _ = factory(max_batch_size=100)
    python, _ = factory(max_batch_size=100)
    for client in (compiled, python):
        client.track(event_name="start", user_id="u")  # started: the fast path has room
        client._queue.clear()
    yield compiled, python
    factory.close_all()


# Identity arguments of a call: none, blank ones, usable ones, and values Python converts.
TRACK_IDENTITIES: list[dict[str, Any]] = [
    {},
    {"user_id": "u-1"},
    {"email": "", "user_id": "u-1"},
    {"email": " ", "customer_domain": "acme.com"},
    {"customer_id": "", "fingerprint": " "},
    {"fingerprint": "\t"},
    {"user_id": 42},
    {"customer_id": uuid.UUID(int=3)},
    {"email": True},
    {"user_id": _Name("x")},
    {"email": None, "user_id": None, "fingerprint": "dev-1"},
]


@needs_compiled
def test_track_matches_python(started_clients: Any) -> None:
    compiled, python = started_clients
    mismatches = []
    cases = itertools.product(
        [*TRACK_NAMES, _OMITTED], TRACK_IDENTITIES, TRACK_PROPERTIES, TRACK_TIMESTAMPS
    )
    for name, ids, properties, timestamp in cases:
        kwargs: dict[str, Any] = {**ids, "properties": properties, "timestamp": timestamp}
        if name is not _OMITTED:
            kwargs["event_name"] = name
        got = _queued(compiled.track, compiled, kwargs)
        with mock.patch.object(_client, "_queue_track", None):
            expected = _queued(python.track, python, kwargs)
        if got != expected:
            mismatches.append((kwargs, got, expected))
    assert mismatches == []


_OMITTED = object()


@needs_compiled
@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (("report_exported",), {"user_id": "u"}),  # positional: Python's TypeError
        ((), {"event_name": "e", "user_id": "u", "colour": "red"}),  # unknown keyword
        ((), {}),
    ],
)
def test_track_hands_odd_calls_to_python(started_clients: Any, args: Any, kwargs: Any) -> None:
    compiled, python = started_clients
    got = _queued(lambda **kw: compiled.track(*args, **kw), compiled, kwargs)
    with mock.patch.object(_client, "_queue_track", None):
        expected = _queued(lambda **kw: python.track(*args, **kw), python, kwargs)
    assert got == expected


def _queued(call: Any, client: Outlit, kwargs: dict[str, Any]) -> Any:
    before = len(client._queue)
    try:
        call(**kwargs)
    except Exception as exc:
        return ("raised", type(exc), str(exc))
    if len(client._queue) == before:
        return ("not queued",)
    item = client._queue.pop()
    # A default timestamp is the clock's: compared by its type only.
    return ("queued", item[:7], type(item[7]) if kwargs.get("timestamp") is None else item[7])


@pytest.fixture
def factory() -> Any:
    made = ClientFactory()
    yield made
    made.close_all()


def test_patching_outlit_track_reaches_clients_made_before(factory: ClientFactory) -> None:
    # Outlit.track stays a Python function that calls the compiled code, so the usual ways of
    # patching it in an app's tests, autospec included, see what they would see without it.
    client, _ = factory()
    assert type(Outlit.__dict__["track"]) is types.FunctionType
    with mock.patch.object(Outlit, "track") as patched:
        client.track(event_name="e", user_id="u")
    patched.assert_called_once_with(event_name="e", user_id="u")
    with mock.patch.object(Outlit, "track", autospec=True) as specced:
        client.track(event_name="f", user_id="u")
        with pytest.raises(TypeError):
            client.track(evnt_name="f", user_id="u")  # autospec checks the signature
    specced.assert_called_once_with(client, event_name="f", user_id="u")
    assert client.queue_size == 0


class _NamingOutlit(Outlit):
    """A subclass whose track() notes each event's name, then queues it as Outlit does."""

    def __init__(self) -> None:
        super().__init__(public_key="pk_test_unit", transport=outlit.MockTransport())
        self.names: list[str] = []

    def track(self, **kwargs: Any) -> None:  # type: ignore[override]
        self.names.append(kwargs["event_name"])
        super().track(**kwargs)


def test_a_subclass_track_is_used() -> None:
    client = _NamingOutlit()
    try:
        client.track(event_name="e", user_id="u")
        client.track(event_name="f", user_id="u")
        assert client.names == ["e", "f"]
        assert client.queue_size == 2
    finally:
        client.shutdown(0.3)


def test_track_reads_the_clock_of_outlit_client(
    factory: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As freezegun does: it replaces time.time in every module's globals.
    client, _ = factory()
    client.track(event_name="start", user_id="u")  # started: later calls take the fast path
    monkeypatch.setattr(_client, "_now", lambda: 1700000000.5)
    client.track(event_name="e", user_id="u")
    assert client._queue[-1][7] == 1700000000.5


@needs_compiled
def test_track_queues_a_copy_of_the_properties(started_clients: Any) -> None:
    compiled, _ = started_clients
    properties = {"plan": "pro"}
    compiled.track(event_name="e", user_id="u", properties=properties)
    queued = compiled._queue.pop()[6]
    properties["plan"] = "changed after the call"
    assert queued == {"plan": "pro"} and queued is not properties


@needs_compiled
def test_the_fast_paths_keep_no_reference_they_do_not_own(started_clients: Any) -> None:
    compiled, _ = started_clients
    name, user, properties = "refcounted_event", "refcounted-user", {"k": "v"}
    answer = {"user_id": user}
    item = (name, None, user, None, None, None, properties, 1764230000.5)
    watched = (name, user, properties, answer, item)
    before = [sys.getrefcount(value) for value in watched]
    for _ in range(1000):
        compiled.track(event_name=name, user_id=user, properties=properties)
        compiled._queue.pop()
        speedups.custom_event(item, "uuid")
        speedups.identity_args(answer)
        speedups.identity_args({"email": ""})  # handed to Python
    assert [sys.getrefcount(value) for value in watched] == before


@needs_compiled
def test_a_full_queue_is_counted_as_in_python(factory: ClientFactory) -> None:
    counts = []
    for compiled in (True, False):
        client, _ = factory(max_queue_size=2)
        with mock.patch.object(_client, "_queue_track", _client._queue_track if compiled else None):
            for n in range(5):
                client.track(event_name=f"e{n}", user_id="u")
        counts.append((client.queue_size, client.stats.dropped_by_reason))
    assert counts[0] == counts[1] == (2, {"queue_full": 3})


def _run_python(code: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != _compiled.ENV_PURE_PYTHON}
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )


@needs_compiled
def test_a_clock_that_rebinds_itself_does_not_crash_track() -> None:
    # _now is read from outlit._client's globals; a clock (or a test's patch) that rebinds
    # it while it runs must not be freed under the compiled code.
    done = _run_python(
        "import functools, time, outlit, outlit._client as C\n"
        "client = outlit.Outlit(public_key='pk_test_unit', transport=outlit.MockTransport())\n"
        "client.track(event_name='start', user_id='u')\n"
        "def rebinding():\n"
        "    C._now = time.time\n"
        "    return 1700000000.0\n"
        "C._now = functools.lru_cache(maxsize=None)(rebinding)\n"
        "client.track(event_name='e', user_id='u')\n"
        "print(client._queue[-1][7])\n"
        "client.shutdown(0.2)\n"
    )
    assert done.returncode == 0, (done.returncode, done.stderr)
    assert done.stdout.strip() == "1700000000.0"


@needs_compiled
def test_a_sub_interpreter_uses_pure_python_and_leaves_the_main_one_alone() -> None:
    # mod_wsgi runs apps in sub-interpreters: the compiled module's state is the main
    # interpreter's, so a sub-interpreter's outlit runs in pure Python.
    done = _run_python(
        "import outlit, outlit._client as C\n"
        "try:\n"
        "    import _testcapi\n"
        "except ImportError:\n"
        "    print('no _testcapi'); raise SystemExit(0)\n"
        "client = outlit.Outlit(public_key='pk_test_unit', transport=outlit.MockTransport())\n"
        "client.track(event_name='start', user_id='u')\n"
        "code = ('import outlit, outlit._compiled as c, outlit._client as C\\n'\n"
        "        'assert c.speedups is None, c.describe()\\n'\n"
        "        'C._now = lambda: 42.0\\n'\n"
        "        'sub = outlit.Outlit(public_key=\"pk_test_unit\", transport=outlit.MockTransport())\\n'\n"
        '        \'sub.track(event_name="s", user_id="u")\\n\'\n'
        "        'sub.shutdown(0.2)\\n')\n"
        "assert _testcapi.run_in_subinterp(code) == 0\n"
        "C._now = lambda: 7.0\n"
        "client.track(event_name='e', user_id='u')\n"
        "print(client._queue[-1][7])\n"
        "client.shutdown(0.2)\n"
    )
    assert done.returncode == 0, (done.returncode, done.stderr)
    if done.stdout.strip() == "no _testcapi":
        pytest.skip("this Python has no _testcapi to start a sub-interpreter with")
    assert done.stdout.strip() == "7.0", done.stderr


def test_a_full_batch_is_sent_without_waiting_for_the_interval(factory: ClientFactory) -> None:
    client, transport = factory(max_batch_size=3)  # flush_interval is a minute
    client.track(event_name="start", user_id="u")
    client.track(event_name="e", user_id="u")
    client.track(event_name="f", user_id="u")  # the third: the worker is woken
    deadline = time.monotonic() + 5
    while not transport.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [event["eventName"] for event in transport.events] == ["start", "e", "f"]


# -- the build ---------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[2]


def _build_wheel(tmp_path: Path, env: dict[str, str]) -> Path:
    """A wheel of this checkout, built by hatchling from the test environment (offline)."""
    out = tmp_path / "wheel"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"),
            *("--disable-pip-version-check", "-w", str(out), str(REPO)),
        ],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    (wheel,) = out.glob("*.whl")
    return wheel


def _implementation_in(wheel: Path, tmp_path: Path) -> str:
    """What `outlit doctor` would say of the fast paths, importing outlit from ``wheel``."""
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(unpacked)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import outlit._compiled as c\n"
        "assert c.__file__.startswith(sys.argv[1]), c.__file__\n"
        "print(c.describe())"
    )
    env = {key: value for key, value in os.environ.items() if key != _compiled.ENV_PURE_PYTHON}
    done = subprocess.run(
        [sys.executable, "-c", code, str(unpacked)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.skipif(_compiler_on_path() is None, reason="no C compiler on this machine")
def test_a_wheel_built_here_carries_the_compiled_module(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path, {})
    assert not wheel.name.endswith("-py3-none-any.whl"), wheel.name  # tagged for this Python
    with zipfile.ZipFile(wheel) as archive:
        compiled = [name for name in archive.namelist() if name.startswith("outlit/_speedups.")]
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    assert sorted(compiled) == sorted(
        ["outlit/_speedups.c", "outlit/_speedups.pyi", f"outlit/_speedups{suffix}"]
    )
    assert _implementation_in(wheel, tmp_path) == "compiled"


def test_without_a_compiler_the_wheel_is_pure_python(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path, {"CC": str(tmp_path / "no-such-cc")})
    assert wheel.name.endswith("-py3-none-any.whl"), wheel.name
    with zipfile.ZipFile(wheel) as archive:
        assert not [name for name in archive.namelist() if name.endswith((".so", ".pyd"))]
    assert _implementation_in(wheel, tmp_path) == (
        "pure Python (not compiled at install: no C compiler, or OUTLIT_NO_COMPILE)"
    )


# ---- the compiled BoundTracker.track and lookup_tracker --------------------------------------


class _Stop(BaseException):
    """Not an Exception (as KeyboardInterrupt): never taken for a failed identity function."""


def _raises(subject: Any) -> Any:
    raise RuntimeError(f"identity store down for {subject}")


class _FalsyRaising(dict):  # type: ignore[type-arg]
    def __len__(self) -> int:
        raise ValueError("cannot tell")


# (lookup, subject) sources, as the adapters give them, and the other sources BoundTracker takes.
BOUND_SOURCES: list[tuple[str, Any]] = [
    ("pair: user", ("pair", lambda s: {"user_id": s}, "b-1")),
    ("pair: two fields", ("pair", lambda s: {"email": s, "customer_domain": "acme.com"}, "j@a.co")),
    ("pair: anonymous", ("pair", lambda s: {}, None)),
    ("pair: None", ("pair", lambda s: None, None)),
    ("pair: spelled otherwise", ("pair", lambda s: {"userId": "x"}, None)),
    ("pair: an int id", ("pair", lambda s: {"user_id": 42}, None)),
    ("pair: a str subclass", ("pair", lambda s: {"user_id": _Name("n")}, None)),
    ("pair: a list", ("pair", lambda s: ["user_id"], None)),
    ("pair: raises", ("pair", _raises, "r")),
    ("pair: truth raises", ("pair", lambda s: _FalsyRaising(user_id="u"), None)),
    ("mapping", ("init", {"user_id": "m-1"})),
    ("function", ("init", lambda: {"email": "f@a.co"})),
    ("none", ("init", None)),
]
BOUND_CALLS: list[dict[str, Any]] = [
    {"event_name": "report_exported"},
    {"event_name": "report_exported", "properties": {"a": 1}},
    {"event_name": "report_exported", "user_id": "explicit"},
    {"event_name": "report_exported", "email": " "},
    {"event_name": "report_exported", "timestamp": 1764230000123},
    {"event_name": ""},
    {"event_name": 5},
    {},
    {"event_name": "e", "colour": "red"},
    {"event_name": "e", _Name("email"): "j@a.co"},  # a keyword that is no plain str
]


def _bound(client: Outlit, source: Any, compiled: bool) -> _tracker.BoundTracker:
    if source[0] == "pair":
        make = _tracker.lookup_tracker if compiled else _tracker._lookup_tracker
        return make(client, source[1], source[2])
    return _tracker.BoundTracker(client, source[1])


def _bound_outcome(
    call: Any, client: Outlit, kwargs: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> Any:
    caplog.clear()
    dropped = client.stats.dropped
    got = _queued(call, client, kwargs)
    logged = [(r.levelname, r.getMessage(), r.exc_info is not None) for r in caplog.records]
    return got, logged, client.stats.dropped - dropped


@needs_compiled
def test_bound_track_matches_python(started_clients: Any, caplog: pytest.LogCaptureFixture) -> None:
    # Every source, every kind of call, twice on one tracker (the identity is looked up once):
    # the same event queued, the same error, the same log and the same drop count.
    compiled, python = started_clients
    assert _tracker.BoundTracker.track is not _tracker._python_track
    caplog.set_level(logging.DEBUG, logger="outlit")
    mismatches = []
    for (label, source), kwargs in itertools.product(BOUND_SOURCES, BOUND_CALLS):
        fast = _bound(compiled, source, compiled=True)
        slow = _bound(python, source, compiled=False)
        for attempt in (1, 2):
            got = _bound_outcome(fast.track, compiled, kwargs, caplog)
            expected = _bound_outcome(
                functools.partial(_tracker._python_track, slow), python, kwargs, caplog
            )
            if got != expected:
                mismatches.append((label, kwargs, attempt, got, expected))
        assert (fast._ids, fast._source) == (slow._ids, slow._source), label
    assert mismatches == []


@needs_compiled
def test_bound_track_refuses_calls_as_python_does(started_clients: Any) -> None:
    compiled, python = started_clients
    fast = _tracker.lookup_tracker(compiled, lambda s: {"user_id": s}, "u")
    slow = _tracker._lookup_tracker(python, lambda s: {"user_id": s}, "u")
    for args, kwargs in [
        (("report_exported",), {}),
        (("a", "b"), {"user_id": "u"}),
        ((), {"event_name": "e", "colour": "red"}),
        ((), {"user_id": "u"}),
    ]:
        with pytest.raises(TypeError) as raised:
            fast.track(*args, **kwargs)
        with pytest.raises(TypeError) as expected:
            _tracker._python_track(slow, *args, **kwargs)
        assert str(raised.value) == str(expected.value)


@needs_compiled
def test_bound_track_lets_what_is_no_exception_through(started_clients: Any) -> None:
    # Only an Exception counts as a failed identity function; the next call asks again.
    compiled, _ = started_clients
    asked = []

    def lookup(subject: Any) -> Any:
        asked.append(subject)
        if len(asked) == 1:
            raise _Stop
        return {"user_id": subject}

    tracker = _tracker.lookup_tracker(compiled, lookup, "u")
    with pytest.raises(_Stop):
        tracker.track(event_name="e")
    assert tracker._ids is None and tracker._source is not None
    tracker.track(event_name="e")
    assert compiled._queue.pop()[:3] == ("e", None, "u") and asked == ["u", "u"]


@needs_compiled
def test_bound_track_calls_a_replaced_or_overridden_client_track(factory: ClientFactory) -> None:
    # The compiled track() queues itself only for Outlit's own track(); a patched one (on the
    # class or on the client, as tests do) or a subclass's is called with the eight arguments.
    client, _ = factory()
    client.track(event_name="start", user_id="u")
    tracker = _tracker.lookup_tracker(client, lambda s: {"user_id": s}, "b-1")
    every = dict.fromkeys(
        ("email", "fingerprint", "customer_id", "customer_domain", "properties", "timestamp")
    )
    with mock.patch.object(Outlit, "track") as on_class:
        tracker.track(event_name="e")
    on_class.assert_called_once_with(event_name="e", user_id="b-1", **every)
    with mock.patch.object(client, "track") as on_client:
        tracker.track(event_name="f", properties={"a": 1})
    on_client.assert_called_once_with(
        event_name="f", user_id="b-1", **{**every, "properties": {"a": 1}}
    )
    assert client.queue_size == 1  # only "start"

    mine = _NamingOutlit()
    try:
        _tracker.lookup_tracker(mine, lambda s: {"user_id": s}, "b-1").track(event_name="g")
        assert mine.names == ["g"] and mine.queue_size == 1
    finally:
        mine.shutdown(0.3)


@needs_compiled
def test_lookup_tracker_makes_what_the_python_one_makes(factory: ClientFactory) -> None:
    client, _ = factory()

    def lookup(subject: Any) -> Any:
        return {"user_id": subject}

    fast = _tracker.lookup_tracker(client, lookup, "u")
    slow = _tracker._lookup_tracker(client, lookup, "u")
    assert type(fast) is type(slow) is _tracker.BoundTracker
    assert (fast._client, fast._source, fast._ids) == (slow._client, slow._source, slow._ids)
    assert fast.identity == slow.identity == {"user_id": "u"}
    with pytest.raises(TypeError):
        speedups.lookup_tracker(client, lookup)


@needs_compiled
def test_bound_track_keeps_no_reference_it_does_not_own(started_clients: Any) -> None:
    compiled, _ = started_clients
    name, user, properties = "refcounted_event", "refcounted-user", {"k": "v"}
    answer = {"user_id": user}
    watched = (name, user, properties, answer, compiled)
    gc.collect()  # what earlier tests left in cycles (a traceback's frames) is freed before
    before = [sys.getrefcount(value) for value in watched]
    for n in range(1000):
        tracker = _tracker.lookup_tracker(compiled, lambda s: answer, None)
        tracker.track(event_name=name, properties=properties)
        tracker.track(event_name=name, email=user)
        if n % 2:
            with pytest.raises(outlit.InvalidEventError):
                _tracker.lookup_tracker(compiled, lambda s: {}, None).track(event_name=name)
        compiled._queue.clear()
        del tracker
    gc.collect()
    assert [sys.getrefcount(value) for value in watched] == before


@needs_compiled
def test_a_tracker_in_a_reference_cycle_is_collected(factory: ClientFactory) -> None:
    # Tracker supports the garbage collector: a source that refers back to its tracker (a
    # request that holds it) does not keep either alive.
    client, _ = factory()
    freed = []

    class Request:
        def __del__(self) -> None:
            freed.append(True)

    request = Request()
    request.outlit = _tracker.lookup_tracker(client, lambda r: {"user_id": "u"}, request)  # type: ignore[attr-defined]
    del request
    gc.collect()
    assert freed == [True]


class _SlottedClient:
    """A client stand-in without an instance __dict__ (as werkzeug's LocalProxy)."""

    __slots__ = ("calls",)

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def track(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)


_EVERY_ARGUMENT = dict.fromkeys(
    ("email", "user_id", "fingerprint", "customer_id", "customer_domain", "properties", "timestamp")
)


@needs_compiled
def test_bound_track_calls_any_other_client_as_python_does() -> None:
    fast_client, slow_client = _SlottedClient(), _SlottedClient()
    _tracker.lookup_tracker(fast_client, _identity_of, "u").track(event_name="e")
    _tracker._python_track(_tracker._lookup_tracker(slow_client, _identity_of, "u"), event_name="e")
    expected = [dict(_EVERY_ARGUMENT, event_name="e", user_id="u")]
    assert fast_client.calls == slow_client.calls == expected


def _identity_of(subject: Any) -> dict[str, Any]:
    return {"user_id": subject}


@needs_compiled
def test_bound_track_uses_a_replaced_or_overridden_resolve(factory: ClientFactory) -> None:
    client, _ = factory()
    client.track(event_name="start", user_id="u")
    client._queue.clear()
    fake = (None, "patched", None, None, None)
    with mock.patch.object(_tracker.BoundTracker, "_resolve", return_value=fake):
        _tracker.lookup_tracker(client, lambda s: {"user_id": s}, "real").track(event_name="e")
    assert client._queue.pop()[:3] == ("e", None, "patched")

    class Mine(_tracker.BoundTracker):
        __slots__ = ()

        def _resolve(self) -> tuple[Any, ...]:
            self._ids = ("mine@acme.com", None, None, None, None)
            return self._ids

    mine = Mine(client, {"user_id": "ignored"})
    mine.track(event_name="f")
    assert client._queue.pop()[:3] == ("f", "mine@acme.com", None)


@needs_compiled
def test_bound_track_reads_the_client_after_the_lookup(factory: ClientFactory) -> None:
    # The lookup is app code: one that rebinds the tracker's client sends to the new one, as
    # the Python method (which reads self._client after the lookup) does.
    queued = []
    for compiled in (True, False):
        old, _ = factory()
        new, _ = factory()
        for client in (old, new):
            client.track(event_name="start", user_id="u")
            client._queue.clear()
        holder: list[Any] = []

        def lookup(subject: Any) -> Any:
            holder[0]._client = new  # noqa: B023 - the loop's own clients
            return {"user_id": subject}

        make = _tracker.lookup_tracker if compiled else _tracker._lookup_tracker
        tracker = make(old, lookup, "u")
        holder.append(tracker)
        (tracker.track if compiled else functools.partial(_tracker._python_track, tracker))(
            event_name="e"
        )
        queued.append((old.queue_size, new.queue_size))
    assert queued == [(0, 1), (0, 1)]


@needs_compiled
def test_bound_track_hands_a_stored_identity_of_another_shape_to_python(
    started_clients: Any,
) -> None:
    compiled, python = started_clients
    for ids in (["a@b.co", None, None, None, None], ("a@b.co",), 5):
        outcomes = []
        for client, compiled_path in ((compiled, True), (python, False)):
            tracker = _tracker.BoundTracker(client, None)
            tracker._ids = ids  # type: ignore[assignment]
            call = (
                tracker.track
                if compiled_path
                else functools.partial(_tracker._python_track, tracker)
            )
            outcomes.append(_queued(call, client, {"event_name": "e"}))
        assert outcomes[0] == outcomes[1], ids


def test_lookup_tracker_takes_its_arguments_by_position() -> None:
    # Both implementations: positional only, as the adapters call it.
    for make in (_tracker.lookup_tracker, _tracker._lookup_tracker):
        with pytest.raises(TypeError):
            make(client=None, lookup=len, subject=None)  # type: ignore[call-arg]
