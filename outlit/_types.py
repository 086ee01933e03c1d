"""The seed SDK's option types, as TypedDicts whose keys are the keyword arguments.

``outlit.track(**options)`` type-checks when ``options: ServerTrackOptions``.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from typing import Any, TypedDict

from ._retry import RetryPolicy
from ._transport import Transport

Timestamp = int | float | _dt.datetime


class OutlitOptions(TypedDict, total=False):
    """Keyword arguments of ``Outlit(...)``."""

    public_key: str
    api_host: str
    flush_interval: float
    max_batch_size: int
    timeout: float
    max_queue_size: int
    enabled: bool
    shutdown_timeout: float
    max_requests_per_second: float
    retry: RetryPolicy
    transport: Transport


class _TrackRequired(TypedDict):
    event_name: str


class ServerTrackOptions(_TrackRequired, total=False):
    """Keyword arguments of ``outlit.track(...)``."""

    email: str
    user_id: str
    fingerprint: str
    customer_id: str
    customer_domain: str
    properties: Mapping[str, Any]
    timestamp: Timestamp


class ServerIdentifyOptions(TypedDict, total=False):
    """Keyword arguments of ``outlit.identify(...)``: email or user_id is required."""

    email: str
    user_id: str
    fingerprint: str
    customer_id: str
    customer_domain: str
    traits: Mapping[str, Any]
    customer_traits: Mapping[str, Any]
    timestamp: Timestamp


class StageOptions(TypedDict, total=False):
    """Keyword arguments of ``outlit.user.activate/engaged/inactive(...)``."""

    email: str
    user_id: str
    fingerprint: str
    properties: Mapping[str, Any]
    timestamp: Timestamp


class BillingOptions(TypedDict, total=False):
    """Keyword arguments of ``outlit.customer.trialing/paid/churned(...)``."""

    customer_id: str
    customer_domain: str
    stripe_customer_id: str
    properties: Mapping[str, Any]
    timestamp: Timestamp
