"""Where events are built: validate one call's arguments and return the wire-form event dict.

These functions run on the caller's thread (often a web request), so they only check types and
identity and build a small dict with the wire's camelCase keys. JSON encoding, the ``uuid`` and
everything that costs more happens later in the background worker.

The custom event of ``track()``, the hottest call, is checked by ``Outlit.track`` itself with the
helpers below (a Python call less on every event, see benchmarks/track_overhead.py) and queued as
a flat tuple (:data:`CustomEvent`), which is several times cheaper to build than the dict; the
worker turns it into the wire dict with :func:`custom_event` when it takes the batch.

A default ``timestamp`` is stored as ``time.time()`` float seconds, which is cheaper to take than
integer milliseconds; the worker turns every float timestamp into int milliseconds before
encoding. A timestamp given by the caller is converted to int milliseconds here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from ._compiled import speedups
from ._exceptions import InvalidEventError

TYPE_CHECKING = False  # typing is not imported at run time: `import outlit` stays cheap
if TYPE_CHECKING:
    from typing import Any

_now = time.time

TRACK_IDENTITY = ("email", "user_id", "fingerprint", "customer_id", "customer_domain")
IDENTIFY_IDENTITY = ("email", "user_id")
STAGE_IDENTITY = ("fingerprint", "email", "user_id")
BILLING_IDENTITY = ("customer_id", "customer_domain", "stripe_customer_id")

STAGES = ("activated", "engaged", "inactive")
BILLING_STATUSES = ("trialing", "paid", "churned")


# track()'s queued form: (event_name, email, user_id, fingerprint, customer_id, customer_domain,
# properties, timestamp). The identities are str or None, and the first one in url order
# (email, user_id, customer_domain, customer_id, fingerprint) is not blank; a blank later one is
# left out here. properties is the caller's mapping already copied, or None; timestamp is float
# seconds or int milliseconds.
if TYPE_CHECKING:
    CustomEvent = tuple[
        str, str | None, str | None, str | None, str | None, str | None, dict[str, Any] | None, Any
    ]


# The keys every custom event starts with, in wire order. Copying this dict is cheaper than
# building one, and its table has room for four more keys (identities and properties) before
# it must grow.
_CUSTOM_TEMPLATE: dict[str, Any] = {
    "type": "custom",
    "timestamp": 0,
    "url": "",
    "path": "/",
    "eventName": "",
    "uuid": "",
}


def custom_event(item: CustomEvent, uuid: str) -> dict[str, Any]:
    """The wire dict of an event ``track()`` queued as a tuple, with its ``uuid`` and integer
    millisecond timestamp: ready to encode (run by the worker)."""
    event_name, email, user_id, fingerprint, customer_id, customer_domain, properties, ts = item
    event = _CUSTOM_TEMPLATE.copy()
    event["timestamp"] = int(ts * 1000) if type(ts) is float else ts
    event["url"] = f"server://{email or user_id or customer_domain or customer_id or fingerprint}"
    event["eventName"] = event_name
    event["uuid"] = uuid
    if email and not email.isspace():
        event["email"] = email
    if user_id and not user_id.isspace():
        event["userId"] = user_id
    if fingerprint and not fingerprint.isspace():
        event["fingerprint"] = fingerprint
    if customer_id and not customer_id.isspace():
        event["customerId"] = customer_id
    if customer_domain and not customer_domain.isspace():
        event["customerDomain"] = customer_domain
    if properties is not None:
        event["properties"] = properties
    return event


custom_event_python = custom_event
if speedups is not None:  # the compiled fast path, which hands unusual tuples to the above
    speedups.use_custom_event(custom_event_python, _CUSTOM_TEMPLATE)
    custom_event = speedups.custom_event


def stamp_event(event: dict[str, Any], next_uuid: Callable[[], str]) -> dict[str, Any]:
    """Make a queued event dict ready to encode: int millisecond timestamp, and a ``uuid``
    unless it has one (a retry keeps its own). Run by the worker."""
    timestamp = event["timestamp"]
    if type(timestamp) is float:
        event["timestamp"] = int(timestamp * 1000)
    if "uuid" not in event:
        event["uuid"] = next_uuid()
    return event


def missing_identity(call: str, accepted: tuple[str, ...]) -> InvalidEventError:
    names = ", ".join(accepted[:-1]) + f" or {accepted[-1]}"
    return InvalidEventError(f"{call}() needs at least one of {names} (a non-blank string)")


def identity_text(field: str, value: Any) -> str | None:
    """Return a usable identity string, None for blank, or raise for a wrong type."""
    if type(value) is not str:
        if isinstance(value, str):
            value = str(value)  # a str subclass (e.g. Django's SafeString): plain str on the wire
        elif isinstance(value, int) and not isinstance(value, bool) and field in _NUMERIC_IDS:
            # Database primary keys are often ints; the wire wants strings.
            return str(value)
        elif field in _KEY_IDS and _is_uuid(value):
            return str(value)  # a UUID primary key or device id
        else:
            raise InvalidEventError(f"{field} must be a string, got {type(value).__name__}")
    text: str = value
    if not text or text.isspace():
        return None
    return text


_NUMERIC_IDS = frozenset(("user_id", "customer_id", "stripe_customer_id"))
_KEY_IDS = _NUMERIC_IDS | {"fingerprint"}


def _is_uuid(value: Any) -> bool:
    import uuid  # only for a value that is not a str: `import outlit` stays cheap

    return isinstance(value, uuid.UUID)


def usable_identities(
    call: str, accepted: tuple[str, ...], *values: str | None
) -> tuple[str | None, ...]:
    """``values`` with every blank one as None; raise when none is left."""
    usable = tuple(value if value and not value.isspace() else None for value in values)
    if not any(usable):
        raise missing_identity(call, accepted)
    return usable


def copy_object(field: str, value: Any) -> dict[str, Any]:
    # Copy so that a caller mutating its dict after the call cannot change what is sent.
    if type(value) is dict:
        return value.copy()
    if isinstance(value, Mapping):
        try:
            return dict(value)
        except Exception as exc:  # a mapping of the app's own that raises when read
            raise InvalidEventError(f"{field} could not be read: {_describe(exc)}") from exc
    raise InvalidEventError(f"{field} must be a dict, got {type(value).__name__}")


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


# 1e11 ms is March 1973; today in seconds is about 1.7e9: a value below it was probably meant
# as seconds.
_SECONDS_LOOK_BELOW = 100_000_000_000
_warned_seconds = False


def _plausible(ms: int) -> int:
    """Refuse a time before 1970 (the service refuses it); say once that a time before 1973
    looks like seconds."""
    global _warned_seconds
    if ms < 0:
        raise InvalidEventError(
            f"timestamp must not be before 1970 (Unix milliseconds >= 0), got {ms} ms"
        )
    if ms < _SECONDS_LOOK_BELOW and not _warned_seconds:
        _warned_seconds = True
        from ._log import get_logger

        get_logger("outlit").warning(
            "outlit: timestamp %d is in 1970-1973 as Unix milliseconds: if it is seconds "
            "(time.time()), pass int(seconds * 1000) or a datetime (said once)",
            ms,
        )
    return ms


def timestamp_ms(value: Any) -> int | float:
    """Int Unix milliseconds from the caller's int/float milliseconds or aware datetime; for
    ``None``, the current time as float seconds (converted by the worker)."""
    if value is None:
        return _now()  # float seconds: see the module docstring
    if isinstance(value, bool):
        raise InvalidEventError("timestamp must be Unix milliseconds (int) or an aware datetime")
    if isinstance(value, int):
        return _plausible(value) if value < _SECONDS_LOOK_BELOW else value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise InvalidEventError("timestamp must be a finite number of milliseconds")
        # Caller's float milliseconds: int now, so it is not taken for seconds.
        return _plausible(int(value)) if value < _SECONDS_LOOK_BELOW else int(value)
    import datetime as _dt

    if isinstance(value, _dt.datetime):
        try:
            aware = value.tzinfo is not None and value.utcoffset() is not None
            ms = int(value.timestamp() * 1000) if aware else 0
        except Exception as exc:  # a tzinfo of the app's own that raises
            raise InvalidEventError(f"timestamp could not be read: {_describe(exc)}") from exc
        if not aware:
            raise InvalidEventError(
                "timestamp datetime must be timezone-aware (e.g. datetime.now(timezone.utc))"
            )
        return _plausible(ms)
    raise InvalidEventError(
        f"timestamp must be Unix milliseconds (int) or an aware datetime, got {type(value).__name__}"
    )


def build_identify_event(
    email: Any = None,
    user_id: Any = None,
    fingerprint: Any = None,
    customer_id: Any = None,
    customer_domain: Any = None,
    traits: Any = None,
    customer_traits: Any = None,
    timestamp: Any = None,
) -> dict[str, Any]:
    email = None if email is None else identity_text("email", email)
    user_id = None if user_id is None else identity_text("user_id", user_id)
    first = email or user_id
    if first is None:
        raise missing_identity("identify", IDENTIFY_IDENTITY)
    event: dict[str, Any] = {
        "type": "identify",
        "timestamp": timestamp_ms(timestamp),
        "url": "server://" + first,
        "path": "/",
    }
    if email is not None:
        event["email"] = email
    if user_id is not None:
        event["userId"] = user_id
    if (
        fingerprint is not None
        and (fingerprint := identity_text("fingerprint", fingerprint)) is not None
    ):
        event["fingerprint"] = fingerprint
    if (
        customer_id is not None
        and (customer_id := identity_text("customer_id", customer_id)) is not None
    ):
        event["customerId"] = customer_id
    if (
        customer_domain is not None
        and (customer_domain := identity_text("customer_domain", customer_domain)) is not None
    ):
        event["customerDomain"] = customer_domain
    if traits is not None:
        event["traits"] = copy_object("traits", traits)
    if customer_traits is not None:
        event["customerTraits"] = copy_object("customer_traits", customer_traits)
    return event


def build_stage_event(
    stage: str,
    email: Any = None,
    user_id: Any = None,
    fingerprint: Any = None,
    properties: Any = None,
    timestamp: Any = None,
) -> dict[str, Any]:
    if stage not in STAGES:
        raise InvalidEventError(f"stage must be one of {', '.join(STAGES)}, got {stage!r}")
    email = None if email is None else identity_text("email", email)
    user_id = None if user_id is None else identity_text("user_id", user_id)
    fingerprint = None if fingerprint is None else identity_text("fingerprint", fingerprint)
    first = email or user_id or fingerprint
    if first is None:
        call = {"activated": "user.activate", "engaged": "user.engaged"}.get(stage, "user.inactive")
        raise missing_identity(call, STAGE_IDENTITY)
    props = {} if properties is None else copy_object("properties", properties)
    # The wire carries a stage's identity inside properties, with explicit nulls.
    props["__fingerprint"] = fingerprint
    props["__email"] = email
    props["__userId"] = user_id
    return {
        "type": "stage",
        "timestamp": timestamp_ms(timestamp),
        "url": "server://" + first,
        "path": "/",
        "stage": stage,
        "properties": props,
    }


def build_billing_event(
    status: str,
    customer_id: Any = None,
    customer_domain: Any = None,
    stripe_customer_id: Any = None,
    properties: Any = None,
    timestamp: Any = None,
) -> dict[str, Any]:
    if status not in BILLING_STATUSES:
        raise InvalidEventError(
            f"billing status must be one of {', '.join(BILLING_STATUSES)}, got {status!r}"
        )
    customer_id = None if customer_id is None else identity_text("customer_id", customer_id)
    customer_domain = (
        None if customer_domain is None else identity_text("customer_domain", customer_domain)
    )
    stripe_customer_id = (
        None
        if stripe_customer_id is None
        else identity_text("stripe_customer_id", stripe_customer_id)
    )
    first = customer_domain or customer_id or stripe_customer_id
    if first is None:
        raise missing_identity(f"customer.{status}", BILLING_IDENTITY)
    event: dict[str, Any] = {
        "type": "billing",
        "timestamp": timestamp_ms(timestamp),
        "url": "server://" + first,
        "path": "/",
        "status": status,
    }
    if customer_id is not None:
        event["customerId"] = customer_id
    if customer_domain is not None:
        # The service reads the legacy `domain` as well; the Node SDK sends both.
        event["customerDomain"] = customer_domain
        event["domain"] = customer_domain
    if stripe_customer_id is not None:
        event["stripeCustomerId"] = stripe_customer_id
    if properties is not None:
        event["properties"] = copy_object("properties", properties)
    return event
