"""A local HTTP server that answers like Outlit's ingest endpoint, stores what it accepts and shows it.

Point a client at it (``api_host=collector.url``) and every event it sends is checked
against the wire contract (:mod:`outlit._collector.contract`), stored in SQLite
(:mod:`outlit._collector.store`) and listed live at ``GET /``.

Routes::

    POST /api/i/v1/{publicKey}/events   ingest, answering 200/207/400/401/413/415/429 as the service does
    GET  /api/events?type=&name=&email=&customer_id=&user_id=&limit=&after_id=&meta=
                                        {"events": [...]} newest first; each item is the wire
                                        event as it arrived, or with meta=1
                                        {"id", "received_at", "public_key", "event": <wire event>}
    GET  /api/stats                     the counters below, as JSON
    GET  /healthz                       200 {"status": "ok"}
    GET  /                              the live event viewer

Use from tests::

    with Collector(port=0, memory=True) as collector:      # port 0: any free port
        client = Outlit(public_key="pk_test", api_host=collector.url)
        ...
        events = collector.wait_for_events(3)              # wire dicts, newest first

Fault injection (attributes may also be changed while running):

- ``fail_rate=p``: each ingest request is answered ``status`` (default 503) with
  probability ``p`` instead of being processed; ``seed`` makes the draws repeatable.
- ``status=code`` alone: every ingest request is answered ``code`` (e.g. 503, 401).
- ``latency=s``: wait ``s`` seconds before answering each ingest request.
- ``rate_limit=n``: past ``n`` requests in one wall-clock second per key, answer 429
  with ``Retry-After``. ``X-RateLimit-Limit/Remaining/Reset`` headers are sent on
  every processed or refused-for-rate request; without ``rate_limit`` they advertise
  the service's documented 100 per second but nothing is refused.
- ``collector.script(503, 503, (429, {"Retry-After": "1"}), 401)``: queue replies,
  consumed one per ingest request before anything else; when the queue is empty
  the collector behaves normally again. An entry is a status code, ``(status,
  headers)``, ``(status, headers, body)`` or a :class:`Reply` (which can also delay
  or drop the connection). A scripted 200 without a body means "process this
  request normally" (its headers are added); any other entry is answered as given
  and stores nothing.

Reading back: ``collector.events(type=, name=, email=, customer_id=, limit=, after_id=)``
(wire dicts, newest first), ``collector.wait_for_events(n, timeout)``, the counters in
``collector.stats`` (requests, events stored, duplicates, ...), the most recent
ingest requests with their status in ``collector.requests`` (refused ones too), and
``collector.reset()`` to forget all of it between tests.

With a database file, accepted events are committed by a writer thread so that a
slow disk never delays an answer; every read above, and ``stop()``, waits for it,
so whatever was acknowledged is visible and, after a clean stop, on disk.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import ipaddress
import json
import logging
import math
import random
import signal
import socket
import socketserver
import sqlite3
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from types import FrameType
from typing import Any, NamedTuple, TypeAlias
from urllib.parse import parse_qs

from outlit._collector.contract import (
    MAX_BODY_BYTES,
    check_key,
    error_envelope,
    invalid_key_body,
    validate_request,
)
from outlit._collector.store import AddResult, EventStore, EventWriter, StoredEvent

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "Collector",
    "CollectorStats",
    "RecordedRequest",
    "Reply",
    "ScriptEntry",
    "main",
]

logger = logging.getLogger("outlit.collector")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8787
# What the service documents; advertised in X-RateLimit-Limit when no limit is enforced.
SERVICE_RATE_LIMIT = 100
DEFAULT_QUERY_LIMIT = 100
MAX_QUERY_LIMIT = 1000
RECORDED_REQUESTS = 256

_INGEST_PREFIX = "/api/i/v1/"
_INGEST_SUFFIX = "/events"
# Bodies up to this size are read (and answered 413 when over MAX_BODY_BYTES) so the
# connection stays usable; anything bigger is refused without reading and closed.
_MAX_READ_BYTES = 8 * MAX_BODY_BYTES
# How often the accept loop checks for stop(); bounds how long stop() waits for it.
_POLL_INTERVAL = 0.05
_MAX_LINE = 65536  # bytes in a request line or header field
_MAX_FIELDS = 100
# An idle keep-alive connection is dropped after this long, as servers commonly do.
_IDLE_TIMEOUT = 300.0
# How long stop() lets answers in progress finish before it cuts their connections.
_STOP_GRACE = 2.0
# SQLite's integers: a query's numbers beyond them are refused rather than overflowing.
_SQLITE_INT = range(-(2**63), 2**63)


class Reply(NamedTuple):
    """One scripted answer to an ingest request.

    ``body`` may be a JSON-able value or raw ``bytes``; ``None`` gives the body the
    service sends for that status. ``delay`` waits before answering; ``disconnect``
    closes the connection without any answer (a network error for the client).
    """

    status: int = 200
    headers: Mapping[str, str] | None = None
    body: object = None
    delay: float = 0.0
    disconnect: bool = False


ScriptEntry: TypeAlias = (
    int | Reply | tuple[int, Mapping[str, str]] | tuple[int, Mapping[str, str], object]
)


@dataclass
class CollectorStats:
    """Counters since start (or the last :meth:`Collector.reset`)."""

    requests: int = 0  # every HTTP request, any route
    ingest_requests: int = 0
    events_stored: int = 0
    duplicates: int = 0  # events whose uuid was already stored under that key
    events_rejected: int = 0  # events refused in a 207
    injected_failures: int = 0  # answers from fail_rate, status or the script
    rate_limited: int = 0


@dataclass(frozen=True)
class RecordedRequest:
    """One ingest request as received, with the status it was answered (0: dropped)."""

    method: str
    path: str
    public_key: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    status: int

    def json(self) -> Any:
        return json.loads(self.body)


class _Answer(NamedTuple):
    status: int
    body: bytes
    headers: Sequence[tuple[str, str]] = ()
    content_type: str = "application/json"
    disconnect: bool = False
    # What the request log says after the status; None: already logged, with more detail.
    note: str | None = ""


_running: set[str] = set()
_running_lock = threading.Lock()


def running_urls() -> list[str]:
    """The URLs of the collectors serving in this process (outlit.testing leaves clients that
    send to one of them alone)."""
    with _running_lock:
        return list(_running)


class Collector:
    """An Outlit-compatible ingest endpoint on this machine. See the module docstring."""

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        db_path: str | Path | None = None,
        memory: bool = False,
        fail_rate: float = 0.0,
        status: int | None = None,
        latency: float = 0.0,
        rate_limit: int | None = None,
        seed: int | None = None,
    ) -> None:
        if not 0.0 <= fail_rate <= 1.0:
            raise ValueError(f"fail_rate must be between 0 and 1, got {fail_rate!r}")
        if latency < 0:
            raise ValueError(f"latency must be >= 0 seconds, got {latency!r}")
        if rate_limit is not None and rate_limit < 1:
            raise ValueError(
                f"rate_limit must be at least 1 request per second, got {rate_limit!r}"
            )
        if status is not None and not 100 <= status <= 599:
            raise ValueError(f"status must be an HTTP status code, got {status!r}")
        self.host = host
        self.fail_rate = fail_rate
        self.status = status
        self.latency = latency
        self.rate_limit = rate_limit
        self._requested_port = port
        self._db_path = db_path
        self._memory = memory
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._stored = threading.Condition()
        self._stopping = threading.Event()
        self._stats = CollectorStats()
        self._script: deque[Reply] = deque()
        self._requests: deque[RecordedRequest] = deque(maxlen=RECORDED_REQUESTS)
        self._windows: dict[str, tuple[int, int]] = {}
        self._state = "unopened"
        self._server: _HTTPServer | None = None
        self._store: EventStore | None = None
        self._writer: EventWriter | None = None
        self._thread: threading.Thread | None = None
        self._serving = False

    # -- lifecycle ------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (the chosen one when constructed with ``port=0``)."""
        if self._server is None:
            return self._requested_port
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL to use as the client's ``api_host``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> str:
        """Serve in a background thread; returns :attr:`url`."""
        self._open()
        assert self._server is not None
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            args=(_POLL_INTERVAL,),
            name=f"outlit-collector:{self.port}",
            daemon=True,
        )
        self._serving = True
        self._thread.start()
        return self.url

    def serve_forever(self, ready: Callable[[str], None] | None = None) -> None:
        """Serve in this thread until :meth:`stop` or Ctrl-C; ``ready(url)`` runs once bound."""
        self._open()
        assert self._server is not None
        try:
            if ready is not None:
                ready(self.url)
            self._serving = True
            self._server.serve_forever(_POLL_INTERVAL)
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop serving and close the database; idempotent.

        Requests already being handled are answered first, and every event that
        was acknowledged is committed by the time this returns.
        """
        with self._lock:
            if self._state == "unopened":
                self._state = "closed"
            if self._state != "open":
                return  # already closed, or another thread is closing it
            self._state = "closing"
        self._stopping.set()
        server = self._server
        assert server is not None
        with _running_lock:
            _running.discard(self.url)
        if self._serving and threading.current_thread() is not self._thread:
            server.shutdown()
        server.wake_idle_connections()
        server.end_connections(grace=_STOP_GRACE)
        server.server_close()  # also joins the connection threads
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        if self._writer is not None:
            self._writer.close()  # commits every acknowledged event
        if self._store is not None:
            self._store.close()
        with self._stored:
            self._stored.notify_all()
        with self._lock:
            self._state = "closed"

    def __enter__(self) -> Collector:
        if self._state == "unopened":
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _open(self) -> None:
        with self._lock:
            if self._state != "unopened":
                raise RuntimeError(
                    "a Collector can be started once; create a new one to serve again"
                )
            self._state = "opening"
        try:
            # The port first: a port in use leaves no database file behind.
            self._server = _HTTPServer((self.host, self._requested_port), self)
            self._store = EventStore(memory=True) if self._memory else EventStore(self._db_path)
            # Commits happen on a writer thread, off the answer path: a file commit can wait
            # on the disk (a WAL checkpoint's fsync takes tens of ms here), and in both modes
            # SQLite runs without the GIL there, so answering and storing overlap on two
            # cores. Handing rows over costs more CPU than inserting inline, but measured
            # throughput is higher (benchmarks/collector_throughput.py).
            self._writer = EventWriter(self._store, on_commit=self._count_stored)
        except BaseException:
            if self._server is not None:
                self._server.server_close()
            if self._store is not None:
                self._store.close()
            with self._lock:
                self._state = "closed"
            raise
        with self._lock:
            self._state = "open"
        with _running_lock:
            _running.add(self.url)

    # -- test helpers ---------------------------------------------------------------

    def script(self, *entries: ScriptEntry | list[ScriptEntry]) -> None:
        """Queue replies for the next ingest requests, one each (see the module docstring).

        ``script(503, 503, 200)`` and ``script([503, 503, 200])`` are the same.
        """
        replies: list[Reply] = []
        for entry in entries:
            if isinstance(entry, list):
                replies.extend(_as_reply(item) for item in entry)
            else:
                replies.append(_as_reply(entry))
        with self._lock:
            self._script.extend(replies)

    @property
    def store(self) -> EventStore:
        """The event store, with every acknowledged event committed."""
        if self._store is None:
            raise RuntimeError("the collector has not been started")
        if self._writer is not None:
            self._writer.flush()
        return self._store

    def events(
        self,
        type: str | None = None,
        name: str | None = None,
        email: str | None = None,
        customer_id: str | None = None,
        limit: int = 100,
        after_id: int | None = None,
        *,
        user_id: str | None = None,
        public_key: str | None = None,
    ) -> list[dict[str, Any]]:
        """Stored wire events matching every filter, newest first."""
        rows = self.store.events(
            type, name, email, customer_id, limit, after_id, user_id=user_id, public_key=public_key
        )
        return [row.event for row in rows]

    def wait_for_events(
        self,
        count: int,
        timeout: float = 5.0,
        *,
        type: str | None = None,
        name: str | None = None,
        email: str | None = None,
        customer_id: str | None = None,
        user_id: str | None = None,
        public_key: str | None = None,
    ) -> list[dict[str, Any]]:
        """Block until at least ``count`` matching events are stored; return them newest first.

        Raises ``TimeoutError`` saying how many arrived when ``timeout`` passes first.
        """
        filters: dict[str, Any] = {
            "type": type,
            "name": name,
            "email": email,
            "customer_id": customer_id,
            "user_id": user_id,
            "public_key": public_key,
        }
        store = self.store
        deadline = time.monotonic() + timeout
        with self._stored:
            while True:
                # The writer notifies after each commit, so counting what is committed is
                # enough (flushing here, under the condition, would deadlock with it).
                found = store.count(**filters)
                if found >= count:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"expected {count} events within {timeout}s, {found} arrived"
                    )
                self._stored.wait(remaining)
        return self.events(limit=max(found, 1), **filters)

    @property
    def stats(self) -> CollectorStats:
        """A snapshot of the counters."""
        if self._writer is not None:
            self._writer.flush()  # so events_stored and duplicates cover every answer sent
        with self._lock:
            return CollectorStats(**asdict(self._stats))

    @property
    def requests(self) -> list[RecordedRequest]:
        """The most recent ingest requests (at most 256), oldest first."""
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        """Forget stored events, counters, recorded requests, scripted replies and rate windows."""
        store = self.store  # waits for the writer, so no old event lands after the reset
        with self._lock:
            self._stats = CollectorStats()
            self._script.clear()
            self._requests.clear()
            self._windows.clear()
        store.clear()

    # -- request handling (called from connection threads) ---------------------------

    def _count_request(self) -> None:
        with self._lock:
            self._stats.requests += 1

    def _ingest(self, public_key: str, body: bytes, headers: Mapping[str, str]) -> _Answer:
        answer = self._ingest_answer(public_key, body, headers)
        record = RecordedRequest(
            "POST",
            f"{_INGEST_PREFIX}{public_key}{_INGEST_SUFFIX}",
            public_key,
            dict(headers),
            body,
            0 if answer.disconnect else answer.status,
        )
        with self._lock:
            self._requests.append(record)
        return answer

    def _ingest_answer(self, public_key: str, body: bytes, headers: Mapping[str, str]) -> _Answer:
        with self._lock:
            self._stats.ingest_requests += 1
            scripted = self._script.popleft() if self._script else None
            injected: int | None = None
            if self.fail_rate > 0.0:
                if self._random.random() < self.fail_rate:
                    injected = self.status or 503
            elif self.status is not None:
                injected = self.status

        if self.latency > 0:
            self._stopping.wait(self.latency)
        extra_headers: Sequence[tuple[str, str]] = ()
        if scripted is not None:
            if scripted.delay > 0:
                self._stopping.wait(scripted.delay)
            extra_headers = list((scripted.headers or {}).items())
            if scripted.status != 200 or scripted.body is not None or scripted.disconnect:
                with self._lock:
                    self._stats.injected_failures += 1
                return _Answer(
                    scripted.status,
                    _encode_body(scripted.status, scripted.body),
                    extra_headers,
                    disconnect=scripted.disconnect,
                    note="scripted",
                )
        elif injected is not None:
            with self._lock:
                self._stats.injected_failures += 1
            note = f"injected: --fail-rate {self.fail_rate}" if self.fail_rate else "--status"
            return _Answer(injected, _encode_body(injected, None), note=note)

        if not check_key(public_key):
            # Said where the developer looks: otherwise the refusal shows only in the app.
            logger.warning(
                "POST %r -> 401: not a public key (pk_ then letters, digits, _ or -); "
                "a placeholder such as 'pk_...' left in the settings?",
                public_key,
            )
            return _Answer(401, _encode_body(401, None), extra_headers, note=None)

        rate_headers, limited = self._take_rate_token(public_key)
        if limited:
            with self._lock:
                self._stats.rate_limited += 1
            return _Answer(
                429,
                _encode_body(429, None),
                [*rate_headers, *extra_headers],
                note=f"over --rate-limit {self.rate_limit} requests/s",
            )

        content_type = headers.get("content-type", "")
        if content_type.split(";", 1)[0].strip().lower() != "application/json":
            message = f"Content-Type must be application/json, got {content_type or 'nothing'!r}"
            return _Answer(
                415, _json(error_envelope(message)), [*rate_headers, *extra_headers], note=message
            )
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding != "identity":
            message = f"Content-Encoding {encoding!r} is not supported"
            return _Answer(
                415, _json(error_envelope(message)), [*rate_headers, *extra_headers], note=message
            )

        result = validate_request(body)
        if result.accepted:
            assert self._store is not None
            events = [event for _, event in result.accepted]
            # Prepared here rather than on the writer thread: Python work there would
            # hold the GIL just when the next request arrives.
            prepared = self._store.prepare(public_key, zip(events, result.raw, strict=True))
            assert self._writer is not None
            # Queued, not yet committed: reads and stop() wait for the writer, so every
            # acknowledged event is visible to them and committed by a clean stop.
            self._writer.submit(prepared)
        refused = len(result.errors) if result.status == 207 else 0
        if refused:
            with self._lock:
                self._stats.events_rejected += refused
        # The usual answer, spelled as _json would spell it, without the encoder's cost.
        data = _OK_BODY % len(result.accepted) if result.status == 200 else _json(result.body)
        if result.status in (200, 207):
            note = f"{len(result.accepted)} accepted, {refused} refused"
        else:  # 400 or 413: nothing of it was taken; say why, and where
            message = str(result.body.get("message", "refused"))
            details = [str(e.get("message")) for e in result.body.get("errors") or []]
            details = [detail for detail in details[:3] if detail != message]
            note = message + (f" ({'; '.join(details)})" if details else "")
        return _Answer(result.status, data, [*rate_headers, *extra_headers], note=note)

    def _count_stored(self, result: AddResult) -> None:
        """Called by the writer thread after each commit."""
        with self._lock:
            self._stats.events_stored += result.stored
            self._stats.duplicates += result.duplicates
        if result.stored:
            with self._stored:
                self._stored.notify_all()

    def _take_rate_token(self, public_key: str) -> tuple[list[tuple[str, str]], bool]:
        """Count this request in its key's one-second window (fixed windows, as documented)."""
        now = time.time()
        window = int(now)
        with self._lock:
            start, used = self._windows.get(public_key, (window, 0))
            if start != window:
                used = 0
            used += 1
            self._windows[public_key] = (window, used)
        limit = self.rate_limit or SERVICE_RATE_LIMIT
        headers = [
            ("X-RateLimit-Limit", str(limit)),
            ("X-RateLimit-Remaining", str(max(0, limit - used))),
            ("X-RateLimit-Reset", str(window + 1)),
        ]
        limited = self.rate_limit is not None and used > self.rate_limit
        if limited:
            headers.append(("Retry-After", str(max(1, math.ceil(window + 1 - now)))))
        return headers, limited

    def _query(self, query: str) -> _Answer:
        params = {key: values[-1] for key, values in parse_qs(query).items()}
        try:
            limit = min(int(params.get("limit", DEFAULT_QUERY_LIMIT)), MAX_QUERY_LIMIT)
            after_id = int(params["after_id"]) if params.get("after_id") else None
        except ValueError:
            return _Answer(400, _json(error_envelope("limit and after_id must be integers")))
        if limit < 0 or (after_id is not None and after_id not in _SQLITE_INT):
            message = "limit must be 0 or more, and after_id a 64-bit integer"
            return _Answer(400, _json(error_envelope(message)))
        rows = self.store.events(
            params.get("type") or None,
            params.get("name") or None,
            params.get("email") or None,
            params.get("customer_id") or None,
            limit,
            after_id,
            user_id=params.get("user_id") or None,
            public_key=params.get("public_key") or None,
        )
        with_meta = params.get("meta", "") not in ("", "0", "false")
        # The stored text is spliced in as-is, so every event reads exactly as it arrived.
        items = [_with_meta(row) if with_meta else row.event_json for row in rows]
        return _Answer(200, ('{"events":[' + ",".join(items) + "]}").encode("utf-8"))


def _with_meta(row: StoredEvent) -> str:
    return (
        f'{{"id":{row.id},"received_at":{row.received_at},'
        f'"public_key":{json.dumps(row.public_key)},"event":{row.event_json}}}'
    )


def _as_reply(entry: ScriptEntry) -> Reply:
    if isinstance(entry, Reply):
        return entry
    if isinstance(entry, int):
        return Reply(entry)
    if isinstance(entry, tuple) and 2 <= len(entry) <= 3 and isinstance(entry[0], int):
        return Reply(entry[0], entry[1], entry[2] if len(entry) == 3 else None)
    raise TypeError(
        f"a scripted reply is a status, (status, headers[, body]) or Reply, not {entry!r}"
    )


_OK_BODY = b'{"success":true,"processed":%d}'

_CANNED_MESSAGES = {
    400: "Invalid request body",
    403: "Invalid or inactive tracking configuration",
    404: "Not found",
    413: "Request body too large",
    429: "Rate limit exceeded",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service unavailable",
    504: "Gateway timeout",
}


def _encode_body(status: int, body: object) -> bytes:
    """A scripted or injected reply's body: as given, or what the service sends for ``status``."""
    if isinstance(body, bytes):
        return body
    if body is not None:
        return _json(body)
    if status in (401, 403):
        return _json(invalid_key_body())
    if status == 200:
        return _json({"success": True, "processed": 0})
    if status == 207:
        return _json({"success": False, "processed": 0, "errors": []})
    message = _CANNED_MESSAGES.get(status, f"HTTP {status}")
    return _json({"success": False, "message": message})


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def _page() -> bytes:
    global _PAGE
    if _PAGE is None:
        _PAGE = resources.files("outlit._collector").joinpath("page.html").read_bytes()
    return _PAGE


_PAGE: bytes | None = None


# -- HTTP plumbing ------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    # Connection threads are joined by server_close(), which is what lets stop()
    # promise that every acknowledged request is finished.
    daemon_threads = False
    block_on_close = True

    def __init__(self, address: tuple[str, int], collector: Collector) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.collector = collector
        try:
            self.loopback_only = ipaddress.ip_address(address[0]).is_loopback
        except ValueError:  # a name, such as localhost
            self.loopback_only = address[0].lower() == "localhost"
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the FQDN, which can stall for seconds on
        # machines with slow DNS; the collector never needs it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Registered on the accept thread, so after shutdown() the set is complete.
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def answers_host(self, host: str | None) -> bool:
        """Whether a request with this ``Host`` is for this collector: on a loopback
        address, only names of this machine are (any, when bound to another interface:
        the user chose to be reachable under other names)."""
        if not self.loopback_only or host is None:  # HTTP/1.0 clients may send none
            return True
        name = host.strip().lower()
        if name.startswith("["):
            name = name[1 : name.find("]")] if "]" in name else name
        elif name.count(":") == 1:
            name = name.partition(":")[0]
        name = name.removesuffix(".")  # "localhost." is the same name, fully qualified
        if name == "localhost" or name.endswith(".localhost") or name == self.server_name:
            return True
        try:
            return ipaddress.ip_address(name).is_loopback
        except ValueError:
            return False

    def end_connections(self, grace: float) -> None:
        """After ``grace`` seconds, cut the connections still open: one whose client does not
        read its answer would otherwise hold stop() until the write times out."""
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            with self._connections_lock:
                if not self._connections:
                    return
            time.sleep(0.02)
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def wake_idle_connections(self) -> None:
        """End keep-alive connections waiting for a next request; busy ones finish their answer."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            # SHUT_RD ends a blocked read with EOF but still lets the answer be written.
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RD)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            logger.debug("connection from %s ended: %r", client_address, error)
        else:
            logger.exception("error while handling a request from %s", client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "outlit-collector"
    timeout = _IDLE_TIMEOUT
    server: _HTTPServer
    fields: dict[str, str]  # this request's headers, names lower-cased

    def setup(self) -> None:
        super().setup()
        # Answers go out in one write, but the client's next request should not wait
        # on Nagle either.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)

    def handle_one_request(self) -> None:
        """Read one request and dispatch it.

        Replaces the base class's parsing, which runs headers through the email
        package at about 100 µs a request; these headers only need a dict.
        """
        self.command = ""
        try:
            line = self.rfile.readline(_MAX_LINE + 1)
            if not line:
                self.close_connection = True
                return
            self.raw_requestline = line
            self.requestline = line.decode("latin-1").rstrip("\r\n")
            parts = self.requestline.split()
            if len(line) > _MAX_LINE or len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                self.close_connection = True
                self._answer(_Answer(400, _json(error_envelope("Bad request line"))))
                return
            self.command, self.path, self.request_version = parts
            headers = self.fields = {}
            count = 0
            while True:
                field = self.rfile.readline(_MAX_LINE + 1)
                if field in (b"\r\n", b"\n"):
                    break
                if not field:  # the client went away mid-request: nothing to answer
                    self.close_connection = True
                    return
                name, colon, value = field.decode("latin-1").partition(":")
                if not colon or count >= _MAX_FIELDS or len(field) > _MAX_LINE:
                    self.close_connection = True
                    self._answer(_Answer(400, _json(error_envelope("Bad header field"))))
                    return
                count += 1
                name = name.strip().lower()
                value = value.strip()
                if name in headers:  # a repeated field reads as one, comma-joined (RFC 9110)
                    value = f"{headers[name]}, {value}"
                headers[name] = value
            connection = headers.get("connection")
            if connection is None:
                self.close_connection = self.request_version == "HTTP/1.0"
            else:
                tokens = {token.strip() for token in connection.lower().split(",")}
                self.close_connection = "close" in tokens or (
                    self.request_version == "HTTP/1.0" and "keep-alive" not in tokens
                )
            if not self.server.answers_host(headers.get("host")):
                # A page on another site that got its name to resolve to 127.0.0.1 (DNS
                # rebinding) would otherwise read the stored events through the browser.
                self.close_connection = True
                self._discard_body()
                message = "this collector answers requests addressed to this machine only"
                self._answer(_Answer(421, _json(error_envelope(message))))
                return
            if self.command == "POST":
                self.do_POST()
            elif self.command in ("GET", "HEAD"):
                self.do_GET()
            else:
                self._answer(_Answer(405, _json(error_envelope(f"{self.command} not allowed"))))
        except TimeoutError:
            self.close_connection = True  # an idle keep-alive connection timed out

    def do_POST(self) -> None:
        collector = self.server.collector
        collector._count_request()
        path = self.path.split("?", 1)[0]
        public_key = path[len(_INGEST_PREFIX) : -len(_INGEST_SUFFIX)]
        if not (
            path.startswith(_INGEST_PREFIX)
            and path.endswith(_INGEST_SUFFIX)
            and public_key
            and "/" not in public_key
        ):
            self._discard_body()
            what = path
            answer = _Answer(404, _encode_body(404, None), note="not an ingest path")
        else:
            what = public_key
            body = self._read_body()
            answer = (
                collector._ingest(public_key, body, self.fields)
                if isinstance(body, bytes)
                else body
            )
        # One line per request, whatever its answer; before answering, so that a client that
        # has its answer finds the line already written.
        if answer.note is not None:
            outcome = "no answer" if answer.disconnect else str(answer.status)
            logger.info("POST %s -> %s (%s)", what, outcome, answer.note)
        self._answer(answer)

    def do_GET(self) -> None:
        collector = self.server.collector
        collector._count_request()
        path, _, query = self.path.partition("?")
        if path == "/api/events":
            self._answer(collector._query(query))
        elif path == "/api/stats":
            self._answer(_Answer(200, _json(asdict(collector.stats))))
        elif path == "/healthz":
            self._answer(_Answer(200, b'{"status":"ok"}'))
        elif path in ("/", "/index.html"):
            self._answer(_Answer(200, _page(), content_type="text/html; charset=utf-8"))
        else:
            self._answer(_Answer(404, _encode_body(404, None)))

    def _read_body(self) -> bytes | _Answer:
        """The request body, or the answer to give a request whose body cannot be read."""
        if self.fields.get("expect", "").lower() == "100-continue":
            # curl asks before sending bodies over 1 KiB; without this it waits a second.
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if "chunked" in self.fields.get("transfer-encoding", "").lower():
            return self._read_chunked()
        raw_length = self.fields.get("content-length")
        if raw_length is None:
            self.close_connection = True
            message = "Content-Length is required"
            return _Answer(411, _json(error_envelope(message)), note=message)
        length = _digits(raw_length)
        if length is None:
            self.close_connection = True
            message = f"bad Content-Length {raw_length!r}"
            return _Answer(400, _json(error_envelope(message)), note=message)
        if length > _MAX_READ_BYTES:
            self.close_connection = True
            return _Answer(413, _encode_body(413, None), note=f"a {length}-byte body, not read")
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True
            return _Answer(0, b"", disconnect=True, note="the client went away mid-body")
        return body

    def _read_chunked(self) -> bytes | _Answer:
        parts: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            digits = line.split(b";", 1)[0].strip()
            # int() alone would also take "-1" (then read(-1) waits for the client to
            # hang up), "0x10" and "1_0"; a chunk size is hex digits only.
            if not digits or digits.strip(_HEX_DIGITS):
                self.close_connection = True
                message = "bad chunked encoding"
                return _Answer(400, _json(error_envelope(message)), note=message)
            size = int(digits, 16)
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers carry nothing the collector needs
                return b"".join(parts)
            total += size
            if total > _MAX_READ_BYTES:
                self.close_connection = True
                return _Answer(413, _encode_body(413, None), note="a chunked body over the limit")
            parts.append(self.rfile.read(size))
            self.rfile.readline(3)

    def _discard_body(self) -> None:
        if "transfer-encoding" in self.fields:
            self.close_connection = True  # not worth decoding just to throw away
            return
        length = _digits(self.fields.get("content-length", "0"))
        if length is not None and length <= _MAX_READ_BYTES:
            self.rfile.read(length)
        else:
            self.close_connection = True

    def _answer(self, answer: _Answer) -> None:
        if answer.disconnect:
            self.close_connection = True
            return
        if self.server.collector._stopping.is_set():
            self.close_connection = True
        reason = self.responses.get(answer.status, ("",))[0]
        head = [
            f"HTTP/1.1 {answer.status} {reason}\r\n"
            f"Server: {self.server_version}\r\n"
            f"Content-Type: {answer.content_type}\r\n"
            f"Content-Length: {len(answer.body)}\r\n"
        ]
        head.extend(f"{name}: {value}\r\n" for name, value in answer.headers)
        if self.close_connection:
            head.append("Connection: close\r\n")
        head.append("\r\n")
        payload = b"" if self.command == "HEAD" else answer.body
        # One write: a separate header and body write can stall on Nagle + delayed ACK.
        self.wfile.write("".join(head).encode("latin-1") + payload)
        self.log_request(answer.status, len(answer.body))


_HEX_DIGITS = b"0123456789abcdefABCDEF"


def _digits(text: str) -> int | None:
    """A Content-Length value: decimal digits only (int() also takes "+5", " 5" and "1_0")."""
    return int(text) if text.isascii() and text.isdigit() else None


# -- command line -------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``outlit dev``: run the collector in the foreground until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="outlit dev",
        description="Run a local Outlit-compatible ingest endpoint with a live event viewer.",
    )
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help="interface to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="port, 0 for any (default: %(default)s)"
    )
    parser.add_argument(
        "--db", type=Path, default=None, help="SQLite file (default: .outlit/collector.sqlite3)"
    )
    parser.add_argument("--memory", action="store_true", help="keep events in memory only")
    parser.add_argument(
        "--fail-rate", type=float, default=0.0, help="probability of a failure answer"
    )
    parser.add_argument(
        "--status", type=int, default=None, help="failure status, or always this status"
    )
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds to wait before each answer"
    )
    parser.add_argument(
        "--rate-limit", type=int, default=None, help="requests per second before 429"
    )
    parser.add_argument("--seed", type=int, default=None, help="seed for --fail-rate")
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"argument --port: {args.port} is not a port (0 to 65535; 0 for any)")

    if not args.quiet:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False

    try:
        collector = Collector(
            host=args.host,
            port=args.port,
            db_path=args.db,
            memory=args.memory,
            fail_rate=args.fail_rate,
            status=args.status,
            latency=args.latency,
            rate_limit=args.rate_limit,
            seed=args.seed,
        )
    except ValueError as exc:
        parser.error(str(exc))

    def announce(url: str) -> None:
        where = (
            "memory"
            if args.memory
            else str(args.db or Path.cwd() / ".outlit" / "collector.sqlite3")
        )
        print(f"Outlit collector listening on {url}", flush=True)
        print(f"  viewer:  {url}/", flush=True)
        print(f"  storing: {where}", flush=True)
        print(f"  use it:  OUTLIT_API_HOST={url}", flush=True)

    # Ctrl-C and SIGTERM (a process manager's) only end the wait below: the server runs on its
    # own thread, so a signal never lands inside its accept loop or a request's set-up (where
    # an exception left a connection thread registered but unstarted, and the shutdown
    # failed before committing), and stop() then finishes every request and commit.
    stop = threading.Event()

    def interrupt(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, interrupt)
    try:
        try:
            collector.start()
        except OSError as exc:
            if collector._server is not None:  # bound: the database's directory failed
                where = args.db or Path.cwd() / ".outlit" / "collector.sqlite3"
                parser.error(f"argument --db: cannot create {str(where)!r}: {exc}")
            print(
                f"outlit dev: cannot listen on {args.host}:{args.port}: {exc}"
                + (" (another port: --port N)" if exc.errno == errno.EADDRINUSE else ""),
                file=sys.stderr,
            )
            return 1
        except sqlite3.Error as exc:
            where = args.db or Path.cwd() / ".outlit" / "collector.sqlite3"
            parser.error(f"argument --db: cannot use {str(where)!r} as the SQLite file: {exc}")
        announce(collector.url)
        while not stop.wait(0.5):
            pass
    finally:
        for sig, was in previous.items():
            signal.signal(sig, was)
        collector.stop()
    return 0
