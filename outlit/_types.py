"""The seed SDK's option types, as TypedDicts whose keys are the keyword arguments.

``outlit.track(**options)`` type-checks when ``options: ServerTrackOptions``. As in the calls
themselves, None means "not given", and ids may be ints or UUIDs where the client takes them.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from typing import Any, TypeAlias, TypedDict
from uuid import UUID  # this module loads on first use of its names, not with `import outlit`

from ._retry import RetryPolicy
from ._transport import Transport

Timestamp = int | float | _dt.datetime
#: Ids that databases key by: a string, an int or a UUID (sent as a string). Defined at run
#: time, so that typing.get_type_hints and pydantic can read the TypedDicts below.
NumericId: TypeAlias = str | int | UUID
#: A device id: a string or a UUID (sent as a string).
DeviceId: TypeAlias = str | UUID


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

    email: str | None
    user_id: NumericId | None
    fingerprint: DeviceId | None
    customer_id: NumericId | None
    customer_domain: str | None
    properties: Mapping[str, Any] | None
    timestamp: Timestamp | None


class ServerIdentifyOptions(TypedDict, total=False):
    """Keyword arguments of ``outlit.identify(...)``: email or user_id is required."""

    email: str | None
    user_id: NumericId | None
    fingerprint: DeviceId | None
    customer_id: NumericId | None
    customer_domain: str | None
    traits: Mapping[str, Any] | None
    customer_traits: Mapping[str, Any] | None
    timestamp: Timestamp | None


class StageOptions(TypedDict, total=False):
    """Keyword arguments of ``outlit.user.activate/engaged/inactive(...)``."""

    email: str | None
    user_id: NumericId | None
    fingerprint: DeviceId | None
    properties: Mapping[str, Any] | None
    timestamp: Timestamp | None


class BillingOptions(TypedDict, total=False):
    """Keyword arguments of ``outlit.customer.trialing/paid/churned(...)``."""

    customer_id: NumericId | None
    customer_domain: str | None
    stripe_customer_id: NumericId | None
    properties: Mapping[str, Any] | None
    timestamp: Timestamp | None
