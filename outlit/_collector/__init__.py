"""A local stand-in for Outlit's ingest endpoint, behind ``outlit dev`` and the test suites.

:class:`Collector` answers ``POST /api/i/v1/{publicKey}/events`` the way the service
does, stores what it accepts in SQLite and lists it live in a browser page.
:mod:`outlit._collector.contract` holds the wire rules as pure functions.
"""

from __future__ import annotations

from outlit._collector.contract import ValidationResult, check_key, validate_event, validate_request
from outlit._collector.server import (
    Collector,
    CollectorStats,
    RecordedRequest,
    Reply,
    ScriptEntry,
    main,
)
from outlit._collector.store import EventStore, StoredEvent

__all__ = [
    "Collector",
    "CollectorStats",
    "EventStore",
    "RecordedRequest",
    "Reply",
    "ScriptEntry",
    "StoredEvent",
    "ValidationResult",
    "check_key",
    "main",
    "validate_event",
    "validate_request",
]
