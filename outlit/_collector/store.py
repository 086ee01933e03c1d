"""SQLite storage for the local collector: one row per accepted event, kept as it arrived.

A retried event (same ``uuid`` under the same public key) is stored once, which is
how the real service treats retries. :class:`EventStore` is one connection behind a
lock; :class:`EventWriter` commits batches on its own thread so that answering a
request never waits for the disk, while reads and shutdown wait for it.

Retries are recognised with an in-memory set of the stored uuids (about 100 bytes
per event, rebuilt from the table on open) rather than a UNIQUE index: SQLite pays
about 5 µs per row to insert a random uuid into an index against 0.4 µs for the
append-only table, and that index alone held ingest well under 50,000 events/s.
One collector owns a database file at a time.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

__all__ = [
    "DEFAULT_DB_PATH",
    "AddResult",
    "EventStore",
    "EventWriter",
    "PreparedRows",
    "StoredEvent",
    "index_columns",
]

logger = logging.getLogger("outlit.collector")

DEFAULT_DB_PATH = Path(".outlit") / "collector.sqlite3"
_SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    uuid TEXT,
    public_key TEXT NOT NULL,
    type TEXT,
    name TEXT,
    email TEXT,
    user_id TEXT,
    customer_id TEXT,
    customer_domain TEXT,
    event TEXT NOT NULL,
    received_at INTEGER NOT NULL
);
"""

# Column order of every INSERT: index_columns(event), then public_key, event, received_at.
_INSERT_HEAD = (
    "INSERT INTO events "
    "(uuid, type, name, email, user_id, customer_id, customer_domain, public_key, event, received_at) "
    "VALUES "
)
# The seven index columns are laid out with 0 for NULL: the sqlite3 module binds None
# about five times slower than an int (it looks for an adapter every time), and every
# one of those columns is otherwise a string, which never equals the integer 0.
_NULL = 0
_ROW_PLACEHOLDERS = "(" + ",".join([f"NULLIF(?,{_NULL})"] * 7) + ",?,?,?)"
_PARAMS_PER_ROW = 10
# Rows per INSERT statement: one request's worth (under SQLite's 999 bound variables
# before 3.32). Each row count is its own statement to compile, milliseconds for a long
# one, so merged batches go in statements of this size plus one remainder: at most this
# many shapes, all of which stay in the connection's statement cache.
_ROWS_PER_STATEMENT = 100 if sqlite3.sqlite_version_info >= (3, 32) else 99
_CACHED_STATEMENTS = 512
_COLUMNS = "id, uuid, public_key, type, name, email, user_id, customer_id, customer_domain, event, received_at"


class PreparedRows(NamedTuple):
    """Rows checked for retries and laid out as INSERT parameters, ready to commit."""

    params: list[Any]  # the rows' values, one after the other
    stored: int  # rows that will be inserted
    duplicates: int  # rows skipped as retries of stored events
    claimed: list[str]  # uuids reserved for the inserted rows, in ``seen``
    seen: set[str]  # the stored uuids of the rows' public key


class AddResult(NamedTuple):
    """How many events of one batch were new and how many were retries already stored."""

    stored: int
    duplicates: int


@dataclass(frozen=True)
class StoredEvent:
    """One stored row. ``event_json`` is the event's JSON text exactly as received."""

    id: int
    uuid: str | None
    public_key: str
    type: str | None
    name: str | None
    email: str | None
    user_id: str | None
    customer_id: str | None
    customer_domain: str | None
    event_json: str
    received_at: int  # Unix milliseconds

    @property
    def event(self) -> dict[str, Any]:
        """The wire event as a dict."""
        value: dict[str, Any] = json.loads(self.event_json)
        return value


def index_columns(event: Mapping[str, Any]) -> tuple[str | None, ...]:
    """The searchable columns of an event: uuid, type, name, email, user id, customer id and domain.

    Stage events carry their identity inside ``properties`` as ``__`` markers, and
    billing events may name the customer by the legacy ``domain``; both are lifted
    out so one filter finds a user or customer whatever the event type. The event
    must have passed :func:`~outlit._collector.contract.validate_event`, which makes
    every one of these a string or absent.
    """
    return tuple(None if value is _NULL else value for value in _columns(event))


def _columns(event: Mapping[str, Any]) -> tuple[Any, ...]:
    """:func:`index_columns` with ``_NULL`` for a missing value, as the INSERT takes them."""
    get = event.get
    event_type = get("type", _NULL)
    if event_type == "stage":
        name = get("stage", _NULL)
        markers = get("properties")
        if not isinstance(markers, dict):
            markers = {}
        # A marker may be present as null, so the default alone does not cover it.
        email = markers.get("__email")
        user_id = markers.get("__userId")
        if email is None:
            email = _NULL
        if user_id is None:
            user_id = _NULL
    else:
        name = get("status", _NULL) if event_type == "billing" else get("eventName", _NULL)
        email = get("email", _NULL)
        user_id = get("userId", _NULL)
    domain = get("customerDomain") or get("domain", _NULL)
    return (get("uuid", _NULL), event_type, name, email, user_id, get("customerId", _NULL), domain)


class EventStore:
    """Events in one SQLite table, one row each; queries return the newest first.

    Events given to it must have passed the contract's ``validate_event``.

    ``EventStore(memory=True)`` keeps everything in memory; otherwise events go to
    ``path`` (default ``.outlit/collector.sqlite3`` under the current directory).
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, memory: bool = False) -> None:
        if memory:
            self.path: Path | None = None
            target = ":memory:"
        else:
            self.path = Path(path) if path is not None else Path.cwd() / DEFAULT_DB_PATH
            self.path.parent.mkdir(parents=True, exist_ok=True)
            target = str(self.path)
        self._lock = threading.Lock()
        # isolation_level=None (autocommit): each write below decides its own
        # transaction, the same way on every Python from 3.10 to 3.13.
        self._db: sqlite3.Connection | None = sqlite3.connect(
            target,
            check_same_thread=False,
            isolation_level=None,
            cached_statements=_CACHED_STATEMENTS,
        )
        try:
            if not memory:
                self._db.execute("PRAGMA journal_mode=WAL")
                # WAL + NORMAL: no fsync per commit; a crash or power cut can lose the
                # last commits but never damages the file.
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
            # uuids already stored, per public key; see the module docstring.
            self._seen: dict[str, set[str]] = {}
            # Separate from the connection lock so preparing never waits on a commit.
            self._seen_lock = threading.Lock()
            for public_key, uuid in self._db.execute(
                "SELECT public_key, uuid FROM events WHERE uuid IS NOT NULL"
            ):
                self._seen.setdefault(public_key, set()).add(uuid)
        except BaseException:
            self._db.close()
            self._db = None
            raise

    def add(
        self,
        public_key: str,
        events: Iterable[tuple[Mapping[str, Any], str]],
        received_at: int | None = None,
    ) -> AddResult:
        """Store ``(event, original JSON text)`` pairs in one transaction, skipping stored uuids."""
        return self.commit([self.prepare(public_key, events, received_at)])

    def prepare(
        self,
        public_key: str,
        events: Iterable[tuple[Mapping[str, Any], str]],
        received_at: int | None = None,
    ) -> PreparedRows:
        """Lay out the INSERT parameters for ``(event, text)`` pairs, leaving out retries.

        A pair whose uuid is stored, or already prepared, is counted as a duplicate.
        Claiming the uuids here, before the commit, lets one thread prepare the next
        request while another commits the previous one without either storing a retry twice.
        """
        when = received_at if received_at is not None else time.time_ns() // 1_000_000
        params: list[Any] = []
        claimed: list[str] = []
        total = 0
        with self._seen_lock:
            seen = self._seen.get(public_key)
            if seen is None:
                seen = self._seen[public_key] = set()
            for event, raw in events:
                total += 1
                columns = _columns(event)
                uuid = columns[0]
                if type(uuid) is str:  # validated events have a string uuid or none
                    if uuid in seen:
                        continue  # a retry of a stored event (or a repeat within the batch)
                    seen.add(uuid)
                    claimed.append(uuid)
                params += columns
                params += (public_key, raw, when)
        stored = len(params) // _PARAMS_PER_ROW
        return PreparedRows(params, stored, total - stored, claimed, seen)

    def commit(self, batches: Sequence[PreparedRows]) -> AddResult:
        """Insert prepared batches, all or none; on failure their uuids are released."""
        stored = sum(batch.stored for batch in batches)
        duplicates = sum(batch.duplicates for batch in batches)
        if not stored:
            return AddResult(0, duplicates)
        if len(batches) == 1:
            params = batches[0].params
        else:
            params = []
            for batch in batches:
                params += batch.params
        step = _ROWS_PER_STATEMENT * _PARAMS_PER_ROW
        with self._lock:
            db = self._connection()
            try:
                if len(params) <= step:
                    # One multi-row INSERT in autocommit mode: inserting and committing
                    # happen in a single SQLite call that runs without the GIL. With
                    # executemany or BEGIN/COMMIT around it, the writer would need the
                    # GIL back several times per batch from the thread answering requests.
                    db.execute(_insert_sql(stored), params)
                else:
                    db.execute("BEGIN")
                    try:
                        for start in range(0, len(params), step):
                            chunk = params[start : start + step]
                            db.execute(_insert_sql(len(chunk) // _PARAMS_PER_ROW), chunk)
                        db.execute("COMMIT")
                    except BaseException:
                        db.execute("ROLLBACK")
                        raise
            except BaseException:
                with self._seen_lock:  # not stored after all, so a retry must be accepted
                    for batch in batches:
                        batch.seen.difference_update(batch.claimed)
                raise
        return AddResult(stored, duplicates)

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
    ) -> list[StoredEvent]:
        """Stored events matching every given filter, newest first.

        ``customer_id`` matches either the customer id or the customer domain.
        ``after_id`` keeps only rows newer than that id (for live polling).
        """
        where, params = _filters(type, name, email, customer_id, after_id, user_id, public_key)
        sql = f"SELECT {_COLUMNS} FROM events{where} ORDER BY id DESC LIMIT ?"
        with self._lock:
            rows = self._connection().execute(sql, (*params, max(0, limit))).fetchall()
        return [StoredEvent(*row) for row in rows]

    def count(
        self,
        type: str | None = None,
        name: str | None = None,
        email: str | None = None,
        customer_id: str | None = None,
        *,
        user_id: str | None = None,
        public_key: str | None = None,
    ) -> int:
        """How many stored events match every given filter."""
        where, params = _filters(type, name, email, customer_id, None, user_id, public_key)
        with self._lock:
            row = (
                self._connection().execute(f"SELECT count(*) FROM events{where}", params).fetchone()
            )
        return int(row[0])

    def last_id(self) -> int:
        """The id of the newest row, 0 when empty."""
        with self._lock:
            row = self._connection().execute("SELECT coalesce(max(id), 0) FROM events").fetchone()
        return int(row[0])

    def clear(self) -> None:
        """Delete every stored event."""
        with self._lock:
            self._connection().execute("DELETE FROM events")
            with self._seen_lock:
                self._seen.clear()

    def close(self) -> None:
        """Close the database; idempotent. Every ``add`` that returned is already committed."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    @property
    def closed(self) -> bool:
        return self._db is None

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("EventStore is closed")
        return self._db


@functools.lru_cache(maxsize=128)
def _insert_sql(rows: int) -> str:
    return _INSERT_HEAD + ",".join([_ROW_PLACEHOLDERS] * rows)


def _filters(
    event_type: str | None,
    name: str | None,
    email: str | None,
    customer_id: str | None,
    after_id: int | None,
    user_id: str | None,
    public_key: str | None,
) -> tuple[str, tuple[Any, ...]]:
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("type", event_type),
        ("name", name),
        ("email", email),
        ("user_id", user_id),
        ("public_key", public_key),
    ):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if customer_id is not None:
        clauses.append("(customer_id = ? OR customer_domain = ?)")
        params.extend((customer_id, customer_id))
    if after_id is not None:
        clauses.append("id > ?")
        params.append(after_id)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    return where, tuple(params)


class EventWriter:
    """Commits submitted batches on one background thread, several requests per transaction.

    :meth:`submit` returns as soon as the batch is queued, so a request is answered
    while the previous one is still being written (the second core does the disk
    work). :meth:`flush` waits until everything submitted before it is committed:
    readers call it first, so they always see every event already acknowledged.
    :meth:`close` commits everything and stops the thread. At most ``max_pending``
    batches wait; past that, :meth:`submit` blocks, which bounds memory.
    """

    def __init__(
        self,
        store: EventStore,
        *,
        max_pending: int = 32,
        on_commit: Callable[[AddResult], None] | None = None,
    ) -> None:
        self._store = store
        self._max_pending = max_pending
        self._on_commit = on_commit
        self._pending: deque[PreparedRows] = deque()
        self._changed = threading.Condition()
        self._submitted = 0
        self._committed = 0
        self._closing = False
        self.failed_batches = 0
        self._thread = threading.Thread(
            target=self._run, name="outlit-collector-writer", daemon=True
        )
        self._thread.start()

    def submit(self, batch: PreparedRows) -> None:
        """Queue one request's events (from :meth:`EventStore.prepare`) to be committed."""
        with self._changed:
            while len(self._pending) >= self._max_pending and not self._closing:
                self._changed.wait()
            if self._closing:
                raise RuntimeError("EventWriter is closed")
            self._pending.append(batch)
            self._submitted += 1
            self._changed.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every batch submitted so far is committed; False on timeout."""
        with self._changed:
            target = self._submitted
            return self._changed.wait_for(
                lambda: self._committed >= target or not self._thread.is_alive(), timeout
            )

    def close(self) -> None:
        """Commit everything submitted, then stop the thread; idempotent."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: bool(self._pending) or self._closing)
                if not self._pending:
                    return  # closing, and nothing left to write
                batches = list(self._pending)
                self._pending.clear()
                done = self._submitted
                self._changed.notify_all()  # room for blocked submitters
            try:
                result = self._store.commit(batches)
            except Exception:
                # A dev tool should keep answering; the log says what was lost.
                self.failed_batches += len(batches)
                logger.exception("could not store %d batches of events", len(batches))
                result = AddResult(0, 0)
            if self._on_commit is not None:
                # Before marking them committed, so a reader that flushed sees the counts.
                self._on_commit(result)
            with self._changed:
                self._committed = done
                self._changed.notify_all()
