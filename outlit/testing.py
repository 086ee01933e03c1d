"""Test helpers: see what an Outlit client would put on the wire, checked against the ingest
contract, without a network.

    from outlit import Outlit
    from outlit.testing import assert_tracked, record

    def test_export_is_tracked():
        with Outlit(public_key="pk_test") as client, record(client) as events:
            export_report(client, user="jane@acme.com")
            assert_tracked(events, event_name="report_exported", email="jane@acme.com")

How it works: the recorded clients send through a :class:`RecordingTransport`, which keeps every
event of every request and answers as the service would (200, or 207 naming the events the
contract refuses). Reading the recorded events first flushes every client sending to the
recorder, so an assertion right after ``track()`` sees the event: the recorded dicts are the
real wire form (camelCase keys, integer millisecond timestamps, ``uuid``, JSON-converted values),
produced by the client's own encoder. A call the service would refuse makes the read raise
:class:`ContractError` (an ``AssertionError``) naming the field, unless ``strict=False``.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, overload

from outlit._client import Outlit
from outlit._collector.contract import check_key, validate_event, validate_request
from outlit._transport import Request, Response, Transport

__all__ = [
    "DEFAULT_SYNC_TIMEOUT",
    "ContractError",
    "Problem",
    "RecordedEvents",
    "RecordingTransport",
    "assert_billing",
    "assert_identified",
    "assert_not_tracked",
    "assert_stage",
    "assert_tracked",
    "describe_event",
    "event_identity",
    "find_events",
    "record",
]

logger = logging.getLogger("outlit.testing")

#: How long reading the recorded events waits for each client's flush (seconds). The recorder
#: answers in memory, so this is only reached when a client is stuck (e.g. a mandated backoff).
DEFAULT_SYNC_TIMEOUT = 5.0

_INGEST_PREFIX = "/api/i/v1/"


class ContractError(AssertionError):
    """An event the Outlit ingest API would refuse (or that the client dropped before sending)."""


@dataclass(frozen=True)
class Problem:
    """Why one event (or request) would not be stored.

    ``event`` is the wire event when there is one; ``reason`` is ``"contract"`` for an event the
    service would refuse, ``"request"`` for a refused request, ``"key"`` for a public key of the
    wrong shape, or the client's drop reason (``"too_large"``, ``"queue_full"``, ...).
    """

    reason: str
    messages: tuple[str, ...]
    event: dict[str, Any] | None = None

    def __str__(self) -> str:
        what = describe_event(self.event) if self.event is not None else self.reason
        return f"{what}: {'; '.join(self.messages) or self.reason}"


# -- the transport ------------------------------------------------------------------


class RecordingTransport:
    """A transport that keeps what clients send and answers like Outlit's ingest endpoint.

    Use it directly as ``Outlit(public_key="pk_test", transport=RecordingTransport())``, or let
    :func:`record` install it. ``transport.events`` flushes every live client sending through
    this transport, then returns the recorded events.
    """

    #: No service behind it, so no request rate to honour: a read right after a call costs
    #: no pacing gap (the client paces real transports at max_requests_per_second).
    paced = False

    def __init__(self, *, strict: bool = True, timeout: float = DEFAULT_SYNC_TIMEOUT) -> None:
        self.strict = strict
        self.timeout = timeout
        self._lock = threading.Lock()
        self._events: list[dict[str, Any]] = []
        self._requests: list[Request] = []
        self._problems: list[Problem] = []
        self._reported = 0
        # import_module, not `from outlit import signals`: the worker emits on whatever module
        # sys.modules holds, and only import_module is sure to return that one.
        signals = importlib.import_module("outlit.signals")
        # Drops before sending (an event over the body limit, a full queue) never reach a
        # transport; the client signals them, and they are failures of the call all the same.
        # Connected weakly: a recorder nobody holds any more stops listening by itself.
        signals.events_dropped.connect(self._on_dropped)

    # Transport protocol ------------------------------------------------------------

    def send(self, request: Request) -> Response:
        public_key = _public_key_of(request.url)
        if not check_key(public_key):
            message = (
                f"public key {public_key!r} is not one (pk_ then letters, digits, _ or -): "
                "the service answers 401"
            )
            self._add(requests=[request], problems=[Problem("key", (message,))])
            return Response(401, {}, _dumps({"success": False, "message": message}))
        result = validate_request(request.body)
        if result.status not in (200, 207):
            messages = tuple(issue.message for issue in result.errors) or (str(result.body),)
            self._add(requests=[request], problems=[Problem("request", messages)])
            return Response(result.status, {}, _dumps(result.body))
        accepted: list[dict[str, Any]] = []
        problems: list[Problem] = []
        for event in request.json()["events"]:
            found = validate_event(event)
            if found:
                problems.append(Problem("contract", tuple(found), event))
            else:
                accepted.append(event)
        self._add(requests=[request], events=accepted, problems=problems)
        return Response(result.status, {}, _dumps(result.body))

    def close(self) -> None:
        """Nothing to release; what was recorded stays readable after the client shuts down."""

    # Reading ------------------------------------------------------------------------

    @property
    def events(self) -> RecordedEvents:
        """The recorded events, flushed first (see :class:`RecordedEvents`)."""
        return RecordedEvents(self)

    @property
    def requests(self) -> list[Request]:
        """Every request received, oldest first (not flushed first)."""
        with self._lock:
            return list(self._requests)

    @property
    def problems(self) -> list[Problem]:
        """Everything that would not be stored, oldest first. Flushes; never raises."""
        self.sync(check=False)
        with self._lock:
            return list(self._problems)

    def clear(self) -> None:
        """Forget what was recorded so far (queued events are flushed into the past first)."""
        self.sync(check=False)
        with self._lock:
            self._events.clear()
            self._requests.clear()
            self._problems.clear()
            self._reported = 0

    def sync(self, *, check: bool = True) -> list[dict[str, Any]]:
        """Flush every client sending here, then return a copy of the recorded events.

        With ``check`` and ``strict``, raise :class:`ContractError` for problems not yet raised.
        """
        for client in _clients_sending_to(self):
            client.flush(self.timeout)
        if check and self.strict:
            self.check()
        with self._lock:
            return list(self._events)

    def check(self) -> None:
        """Raise :class:`ContractError` for every problem not raised before."""
        with self._lock:
            fresh = self._problems[self._reported :]
            self._reported = len(self._problems)
        if fresh:
            lines = "\n".join(f"  {problem}" for problem in fresh)
            count = f"{len(fresh)} problem{'s' if len(fresh) != 1 else ''}"
            raise ContractError(
                f"Outlit's ingest API would not store everything sent ({count}):\n{lines}"
            )

    # Internals ------------------------------------------------------------------------

    def _add(
        self,
        *,
        requests: Sequence[Request] = (),
        events: Sequence[dict[str, Any]] = (),
        problems: Sequence[Problem] = (),
    ) -> None:
        with self._lock:
            self._requests.extend(requests)
            self._events.extend(events)
            self._problems.extend(problems)

    def _on_dropped(self, sender: Any, count: int = 0, reason: str = "", **extra: Any) -> None:
        if not isinstance(sender, Outlit) or _transport_of(sender) is not self:
            return
        # "rejected" drops are answers from send() itself, which recorded them with the event.
        if reason == "rejected":
            return
        noun = "1 event" if count == 1 else f"{count} events"
        details = [str(m) for m in extra.get("messages") or ()]
        message = f"{noun} dropped by the client" + (f": {details[0]}" if details else "")
        self._add(problems=[Problem(reason, (message,))])


class RecordedEvents(Sequence[dict[str, Any]]):
    """A live, read-only view of a recorder's wire events, oldest first.

    Every read (``len``, indexing, iteration, the helpers) flushes the clients first, so it sees
    every call made before it. With a strict recorder, a read raises :class:`ContractError` when
    an event recorded since the last read would be refused by the service.
    """

    def __init__(self, recorder: RecordingTransport) -> None:
        self._recorder = recorder

    @property
    def recorder(self) -> RecordingTransport:
        return self._recorder

    def _read(self) -> list[dict[str, Any]]:
        return self._recorder.sync()

    def __len__(self) -> int:
        return len(self._read())

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        return self._read()[index]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self._read())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RecordedEvents):
            return self._read() == other._read()
        if isinstance(other, (list, tuple)):
            return self._read() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # it compares by content, which changes

    def __repr__(self) -> str:
        return f"RecordedEvents({self._read()!r})"

    def of_type(self, type: str) -> list[dict[str, Any]]:
        """The events of one wire type: ``"custom"``, ``"identify"``, ``"stage"``, ``"billing"``."""
        return [event for event in self._read() if event.get("type") == type]

    def named(self, event_name: str) -> list[dict[str, Any]]:
        """The custom events called ``event_name``."""
        return [
            e
            for e in self._read()
            if e.get("type") == "custom" and e.get("eventName") == event_name
        ]

    def where(self, **fields: Any) -> list[dict[str, Any]]:
        """The events matching every field (same rules as :func:`find_events`)."""
        return find_events(self._read(), **fields)

    @property
    def uuids(self) -> list[str]:
        return [str(event.get("uuid")) for event in self._read()]

    @property
    def problems(self) -> list[Problem]:
        """What would not be stored, without raising (for tests about refused calls)."""
        return self._recorder.problems

    def clear(self) -> None:
        """Forget everything recorded so far."""
        self._recorder.clear()


# -- recording clients --------------------------------------------------------------


@contextlib.contextmanager
def record(
    *clients: Outlit,
    strict: bool = True,
    timeout: float = DEFAULT_SYNC_TIMEOUT,
    except_hosts: Iterable[str] = (),
) -> Iterator[RecordedEvents]:
    """Record what clients send inside the block instead of sending it.

    ``record(client, ...)`` records those clients. ``record()`` with no client records every
    live client and every client created inside the block (framework adapters' included),
    except clients constructed with a ``transport=`` of their own, which keep it, and clients
    whose ``api_host`` is one of ``except_hosts`` (a local collector the test runs), which
    keep sending there.

    Events a client still holds when the block starts are set aside: they are neither recorded
    nor sent. When the block ends, the clients are flushed once more and get their own transport
    back; with ``strict``, an unraised :class:`ContractError` is raised then.
    """
    recorder = RecordingTransport(strict=strict, timeout=timeout)
    restore: list[tuple[Outlit, Transport]] = []
    lock = threading.Lock()

    def take(client: Outlit) -> None:
        with lock:
            if client.closed or _transport_of(client) is recorder:
                return
            previous = _set_aside_queued(client, timeout)
            _use_transport(client, recorder)
            restore.append((client, previous))

    if isinstance(except_hosts, str):
        raise TypeError("except_hosts takes a list of URLs, not one URL as a string")
    kept_hosts = {_host_key(host) for host in except_hosts}

    def take_default(client: Outlit) -> None:
        options = client.options
        host = _host_key(options.api_host)
        if options.transport is None and host not in kept_hosts | _collector_hosts():
            take(client)

    with contextlib.ExitStack() as stack:
        if clients:
            for client in clients:
                take(client)
        else:
            for client in _live_clients():
                take_default(client)
            stack.enter_context(_on_new_clients(take_default))
        finished = False
        try:
            yield recorder.events
            finished = True
        finally:
            stack.close()  # no more take-overs while giving transports back
            recorder.sync(check=False)
            with lock:
                for client, previous in reversed(restore):
                    _use_transport(client, previous)
        if finished and strict:
            recorder.check()


def _host_key(url: str) -> tuple[str, str, str]:
    """What makes two API host URLs the same: scheme and host:port in any case, and the path
    without a trailing slash (no name resolution: localhost is not 127.0.0.1)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url.strip())
    return parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/")


def _collector_hosts() -> set[tuple[str, str, str]]:
    """The URLs of the local collectors running in this process: a test that starts one means
    its clients to send there."""
    server = sys.modules.get("outlit._collector.server")
    if server is None:  # never imported: none runs
        return set()
    return {_host_key(url) for url in server.running_urls()}


@contextlib.contextmanager
def _on_new_clients(callback: Callable[[Outlit], None]) -> Iterator[None]:
    """Call ``callback(client)`` right after each :class:`~outlit.Outlit` is constructed.

    Used by :func:`record` and ``outlit demo`` to reach clients that code under test creates for
    itself, before any of them can send anything.
    """
    original = Outlit.__dict__["__init__"]

    def init(self: Outlit, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        callback(self)

    init.__wrapped__ = original  # type: ignore[attr-defined]
    init.__doc__ = original.__doc__
    setattr(Outlit, "__init__", init)  # noqa: B010 - mypy refuses assigning to a method
    try:
        yield
    finally:
        setattr(Outlit, "__init__", original)  # noqa: B010


# The three functions below are the only places that reach into the client's internals: where the
# worker's transport lives and which clients are alive. Everything else goes through them.


def _transport_of(client: Outlit) -> Transport:
    return client._worker.transport


def _use_transport(client: Outlit, transport: Transport) -> Transport:
    """Make ``client`` send through ``transport`` from its next request on; return the old one.

    A request already in flight finishes on the old transport. The client still closes its own
    transport at shutdown, never the one given here.
    """
    worker = client._worker
    previous = worker.transport
    worker.transport = transport
    return previous


def _live_clients() -> list[Outlit]:
    from outlit._client import _live_clients as live

    return [client for client in list(live) if not client.closed]


def _clients_sending_to(transport: Transport) -> list[Outlit]:
    return [client for client in _live_clients() if _transport_of(client) is transport]


def _set_aside_queued(client: Outlit, timeout: float) -> Transport:
    """Flush what ``client`` already holds into a sink, so it is neither recorded nor sent."""
    waiting = client.queue_size
    if waiting == 0:
        return _transport_of(client)
    previous = _use_transport(client, RecordingTransport(strict=False, timeout=timeout))
    client.flush(timeout)
    logger.info("outlit.testing: set aside %d events queued before recording began", waiting)
    return previous


# -- assertions ---------------------------------------------------------------------

# Python keyword names -> wire keys. Wire names are accepted as they are.
_WIRE_NAMES = {
    "event_name": "eventName",
    "user_id": "userId",
    "customer_id": "customerId",
    "customer_domain": "customerDomain",
    "stripe_customer_id": "stripeCustomerId",
    "customer_traits": "customerTraits",
}
_KNOWN_KEYS = frozenset(
    {
        "type",
        "timestamp",
        "url",
        "path",
        "uuid",
        "eventName",
        "email",
        "userId",
        "fingerprint",
        "customerId",
        "customerDomain",
        "domain",
        "stripeCustomerId",
        "properties",
        "traits",
        "customerTraits",
        "stage",
        "status",
    }
)
# Matched as "contains at least these items", so tests need not restate every property.
_OBJECT_KEYS = frozenset({"properties", "traits", "customerTraits"})
# A stage event carries its identity inside properties, under these markers.
_STAGE_MARKERS = {"email": "__email", "userId": "__userId", "fingerprint": "__fingerprint"}


def find_events(events: Iterable[Mapping[str, Any]], **fields: Any) -> list[dict[str, Any]]:
    """The wire events matching every given field, in order.

    Field names are the client's keyword arguments (``event_name``, ``user_id``, ...) or the wire
    keys (``eventName``, ``userId``, ...). ``properties``, ``traits`` and ``customer_traits``
    match when the event has at least the given items; other fields must be equal (so
    ``unittest.mock.ANY`` works). For a stage event, ``email``, ``user_id`` and ``fingerprint``
    are read from its properties, where the wire carries them.
    """
    wanted = {_wire_name(name): value for name, value in fields.items()}
    return [dict(event) for event in events if _matches(event, wanted)]


def assert_tracked(
    events: Iterable[Mapping[str, Any]],
    event_name: str | None = None,
    *,
    count: int | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """Assert a custom event (``track()``) matching the fields was recorded; return the first.

    ``count`` asserts exactly that many matches instead of at least one.
    """
    if event_name is not None:
        fields = {"event_name": event_name, **fields}
    return _assert_found(events, "custom", fields, count)


def assert_identified(
    events: Iterable[Mapping[str, Any]], *, count: int | None = None, **fields: Any
) -> dict[str, Any]:
    """Assert an identify event matching the fields was recorded; return the first."""
    return _assert_found(events, "identify", fields, count)


def assert_stage(
    events: Iterable[Mapping[str, Any]],
    stage: str,
    *,
    count: int | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """Assert a stage event (``"activated"``, ``"engaged"``, ``"inactive"``) was recorded."""
    fields = {"stage": stage, **fields}
    return _assert_found(events, "stage", fields, count)


def assert_billing(
    events: Iterable[Mapping[str, Any]],
    status: str,
    *,
    count: int | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """Assert a billing event (``"trialing"``, ``"paid"``, ``"churned"``) was recorded."""
    fields = {"status": status, **fields}
    return _assert_found(events, "billing", fields, count)


def assert_not_tracked(
    events: Iterable[Mapping[str, Any]], event_name: str | None = None, **fields: Any
) -> None:
    """Assert no custom event matching the fields was recorded."""
    if event_name is not None:
        fields = {"event_name": event_name, **fields}
    _assert_found(events, "custom", fields, 0)


def _assert_found(
    events: Iterable[Mapping[str, Any]],
    event_type: str,
    fields: dict[str, Any],
    count: int | None,
) -> dict[str, Any]:
    seen = [dict(event) for event in events]
    found = find_events(seen, type=event_type, **fields)
    if (count is None and found) or (count is not None and len(found) == count):
        return found[0] if found else {}
    wanted = ", ".join(f"{name}={value!r}" for name, value in fields.items())
    condition = f" with {wanted}" if wanted else ""
    if count is None:
        article = "an" if event_type[:1] in "aeiou" else "a"
        head = (
            f"expected {article} {event_type} event{condition}; "
            f"none of the {len(seen)} recorded events matches"
        )
    else:
        noun = "event" if count == 1 else "events"
        head = f"expected {count} {event_type} {noun}{condition}, found {len(found)}"
    # Besides type, name and identity, each event shows the other fields the assertion names
    # (its properties, say), so that a mismatch shows what was recorded instead.
    shown_keys = {"type", "eventName", "stage", "status", "email", "userId", "fingerprint"}
    shown_keys |= {"customerId", "customerDomain", "stripeCustomerId"}
    extra = [wire for wire in map(_wire_name, fields) if wire not in shown_keys]
    shown = "\n".join(f"  {_describe_with(event, extra)}" for event in seen[-20:])
    more = f"\n  ... and {len(seen) - 20} earlier" if len(seen) > 20 else ""
    raise AssertionError(f"{head}:\n{shown}{more}" if seen else f"{head} (nothing was recorded)")


def _describe_with(event: Mapping[str, Any], keys: list[str]) -> str:
    extra = " ".join(f"{key}={event[key]!r}" for key in keys if key in event)
    return f"{describe_event(event)} {extra}" if extra else describe_event(event)


def _wire_name(name: str) -> str:
    wire = _WIRE_NAMES.get(name, name)
    if wire not in _KNOWN_KEYS:
        accepted = sorted(
            {*_WIRE_NAMES, *(k for k in _KNOWN_KEYS if k not in _WIRE_NAMES.values())}
        )
        raise TypeError(f"unknown event field {name!r}; use one of {', '.join(accepted)}")
    return wire


def _matches(event: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    for key, value in wanted.items():
        if event.get("type") == "stage" and key in _STAGE_MARKERS:
            properties = event.get("properties") or {}
            if properties.get(_STAGE_MARKERS[key]) != value:
                return False
        elif key in _OBJECT_KEYS and isinstance(value, Mapping):
            actual = event.get(key)
            if not isinstance(actual, Mapping):
                return False
            if any(k not in actual or actual[k] != v for k, v in value.items()):
                return False
        elif key not in event:
            if value is not None:
                return False
        elif event[key] != value:
            return False
    return True


def describe_event(event: Mapping[str, Any]) -> str:
    """One line for a wire event: its type, name/stage/status and identity."""
    event_type = event.get("type", "?")
    label = {"custom": "eventName", "stage": "stage", "billing": "status"}.get(str(event_type))
    parts = [str(event_type)]
    if label is not None and label in event:
        parts.append(repr(event[label]))
    identity = event_identity(event)
    parts.extend(f"{key}={value!r}" for key, value in identity.items())
    return " ".join(parts)


def event_identity(event: Mapping[str, Any]) -> dict[str, Any]:
    """The identity fields of a wire event (a stage event's come from its properties)."""
    if event.get("type") == "stage":
        properties = event.get("properties") or {}
        return {
            key: properties[marker]
            for key, marker in _STAGE_MARKERS.items()
            if properties.get(marker) is not None
        }
    keys = ("email", "userId", "fingerprint", "customerId", "customerDomain", "stripeCustomerId")
    return {key: event[key] for key in keys if key in event}


# -- helpers ------------------------------------------------------------------------


def _public_key_of(url: str) -> str:
    from urllib.parse import urlsplit

    path = urlsplit(url).path
    if path.startswith(_INGEST_PREFIX) and path.endswith("/events"):
        return path[len(_INGEST_PREFIX) : -len("/events")]
    return ""


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")
