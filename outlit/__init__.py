"""Outlit's server-side Python SDK: a batching client for customer-journey analytics.

from outlit import Outlit

outlit = Outlit(public_key="pk_...")
outlit.track(email="jane@acme.com", event_name="report_exported", properties={"format": "pdf"})
outlit.flush()
"""

from __future__ import annotations

from ._client import DEFAULT_FLUSH_TIMEOUT, CustomerAPI, Outlit, UserAPI
from ._exceptions import ClientClosedError, InvalidEventError, OptionError, OutlitError
from ._options import (
    DEFAULT_API_HOST,
    DEFAULT_FLUSH_INTERVAL,
    DEFAULT_MAX_BATCH_SIZE,
    DEFAULT_MAX_QUEUE_SIZE,
    DEFAULT_MAX_REQUESTS_PER_SECOND,
    DEFAULT_SHUTDOWN_TIMEOUT,
    DEFAULT_TIMEOUT,
    MAX_BODY_BYTES,
    MAX_EVENTS_PER_REQUEST,
    Options,
)
from ._version import __version__

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ._retry import RetryPolicy
    from ._tracker import BoundTracker
    from ._transport import (
        HTTPTransport,
        HttpxTransport,
        MockTransport,
        Request,
        Response,
        Transport,
        TransportError,
    )
    from ._types import (
        BillingOptions,
        OutlitOptions,
        ServerIdentifyOptions,
        ServerTrackOptions,
        StageOptions,
    )
    from ._worker import ClientStats, FlushResult

# Loaded on first access, so that `import outlit` imports neither typing, dataclasses, logging,
# blinker nor httpx (see benchmarks/track_overhead.py for the import time).
_LAZY = {
    "RetryPolicy": "_retry",
    "BoundTracker": "_tracker",
    "HTTPTransport": "_transport",
    "HttpxTransport": "_transport",
    "MockTransport": "_transport",
    "Request": "_transport",
    "Response": "_transport",
    "Transport": "_transport",
    "TransportError": "_transport",
    "BillingOptions": "_types",
    "OutlitOptions": "_types",
    "ServerIdentifyOptions": "_types",
    "ServerTrackOptions": "_types",
    "StageOptions": "_types",
    "ClientStats": "_worker",
    "FlushResult": "_worker",
}

__all__ = [
    "DEFAULT_API_HOST",
    "DEFAULT_FLUSH_INTERVAL",
    "DEFAULT_FLUSH_TIMEOUT",
    "DEFAULT_MAX_BATCH_SIZE",
    "DEFAULT_MAX_QUEUE_SIZE",
    "DEFAULT_MAX_REQUESTS_PER_SECOND",
    "DEFAULT_SHUTDOWN_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "MAX_BODY_BYTES",
    "MAX_EVENTS_PER_REQUEST",
    "BillingOptions",
    "BoundTracker",
    "ClientClosedError",
    "ClientStats",
    "CustomerAPI",
    "FlushResult",
    "HTTPTransport",
    "HttpxTransport",
    "InvalidEventError",
    "MockTransport",
    "OptionError",
    "Options",
    "Outlit",
    "OutlitError",
    "OutlitOptions",
    "Request",
    "Response",
    "RetryPolicy",
    "ServerIdentifyOptions",
    "ServerTrackOptions",
    "StageOptions",
    "Transport",
    "TransportError",
    "UserAPI",
    "__version__",
]


def __getattr__(name: str) -> Any:
    import importlib

    if name in _LAZY:
        value = getattr(importlib.import_module(f"outlit.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    if name in ("signals", "testing"):
        return importlib.import_module(f"outlit.{name}")
    raise AttributeError(f"module 'outlit' has no attribute {name!r}")
