"""Request-bound trackers: the client's methods with the current user's identity filled in.

The framework adapters create one :class:`BoundTracker` per request with a function that finds
the request's user. The identity is looked up at most once, and only when a call needs it.
A call that names any identity field of its own is sent exactly as given: identities are
never mixed (an admin tracking an event for another user's email does not get the admin's id).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ._events import BILLING_IDENTITY, IDENTIFY_IDENTITY, STAGE_IDENTITY, TRACK_IDENTITY

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._client import Outlit
    from ._types import BillingOptions, ServerIdentifyOptions, ServerTrackOptions, StageOptions
    from ._worker import FlushResult

logger = logging.getLogger("outlit")

IdentitySource = Mapping[str, Any] | Callable[[], Mapping[str, Any] | None] | None

#: The identity keys a resolver may return.
IDENTITY_KEYS = TRACK_IDENTITY

_UNRESOLVED: Any = object()


class BoundTracker:
    """Has every tracking method of :class:`~outlit.Outlit`; fills in a default identity."""

    __slots__ = ("_client", "_identity", "_source", "customer", "user")

    def __init__(self, client: Outlit, identity: IdentitySource = None) -> None:
        self._client = client
        self._source = identity
        self._identity: Any = _UNRESOLVED
        self.user = _BoundUser(self)
        self.customer = _BoundCustomer(self)

    @property
    def client(self) -> Outlit:
        return self._client

    @property
    def identity(self) -> dict[str, Any]:
        """The default identity (resolved once; {} when there is none)."""
        if self._identity is _UNRESOLVED:
            self._identity = self._resolve()
        return dict(self._identity)

    def _resolve(self) -> dict[str, Any]:
        source = self._source
        try:
            found = source() if callable(source) else source
        except Exception:
            # The identity hook is app code; a failure there must not break the request.
            logger.exception("outlit: the identity function raised; tracking without identity")
            return {}
        if not found:
            return {}
        return {
            k: v for k, v in dict(found).items() if k in IDENTITY_KEYS and v is not None and v != ""
        }

    def _fill(
        self, kwargs: dict[str, Any], named: tuple[str, ...], fields: tuple[str, ...] | None = None
    ) -> dict[str, Any]:
        """Fill ``fields`` (default: ``named``) from the bound identity unless the call names
        any of ``named`` itself; a field the call gives is never replaced."""
        for name in named:
            if kwargs.get(name) is not None:
                return kwargs
        if self._identity is _UNRESOLVED:
            self._identity = self._resolve()
        for name in fields or named:
            value = self._identity.get(name)
            if value is not None and kwargs.get(name) is None:
                kwargs[name] = value
        return kwargs

    def track(self, **kwargs: Unpack[ServerTrackOptions]) -> None:
        """:meth:`Outlit.track`, with the bound identity when the call names none."""
        self._client.track(**self._fill(dict(kwargs), TRACK_IDENTITY))

    def identify(self, **kwargs: Unpack[ServerIdentifyOptions]) -> None:
        """:meth:`Outlit.identify`, with the bound user when the call names no email/user_id.

        The bound customer fields come along only when the call names no customer itself."""
        user_fields: tuple[str, ...] = ("email", "user_id", "fingerprint")
        if kwargs.get("customer_id") is None and kwargs.get("customer_domain") is None:
            user_fields = TRACK_IDENTITY
        self._client.identify(**self._fill(dict(kwargs), IDENTIFY_IDENTITY, user_fields))

    def flush(self, timeout: float | None = None) -> FlushResult:
        return self._client.flush(timeout)

    async def aflush(self, timeout: float | None = None) -> FlushResult:
        return await self._client.aflush(timeout)

    @property
    def queue_size(self) -> int:
        return self._client.queue_size

    def __repr__(self) -> str:
        return f"<BoundTracker identity={sorted(self.identity)} client={self._client!r}>"


class _BoundUser:
    __slots__ = ("_tracker",)

    def __init__(self, tracker: BoundTracker) -> None:
        self._tracker = tracker

    def identify(self, **kwargs: Unpack[ServerIdentifyOptions]) -> None:
        self._tracker.identify(**kwargs)

    def activate(self, **kwargs: Unpack[StageOptions]) -> None:
        t = self._tracker
        t._client.user.activate(**t._fill(dict(kwargs), STAGE_IDENTITY))

    def engaged(self, **kwargs: Unpack[StageOptions]) -> None:
        t = self._tracker
        t._client.user.engaged(**t._fill(dict(kwargs), STAGE_IDENTITY))

    def inactive(self, **kwargs: Unpack[StageOptions]) -> None:
        t = self._tracker
        t._client.user.inactive(**t._fill(dict(kwargs), STAGE_IDENTITY))


class _BoundCustomer:
    __slots__ = ("_tracker",)

    def __init__(self, tracker: BoundTracker) -> None:
        self._tracker = tracker

    def trialing(self, **kwargs: Unpack[BillingOptions]) -> None:
        t = self._tracker
        t._client.customer.trialing(**t._fill(dict(kwargs), BILLING_IDENTITY))

    def paid(self, **kwargs: Unpack[BillingOptions]) -> None:
        t = self._tracker
        t._client.customer.paid(**t._fill(dict(kwargs), BILLING_IDENTITY))

    def churned(self, **kwargs: Unpack[BillingOptions]) -> None:
        t = self._tracker
        t._client.customer.churned(**t._fill(dict(kwargs), BILLING_IDENTITY))


def user_identity(user: Any) -> dict[str, Any]:
    """The identity of an authenticated user object (Django, Flask-Login, Starlette...).

    ``user_id`` is the string form of ``pk`` (else ``id``, else ``get_id()``); ``email`` is
    added when the object has a non-blank one. Anonymous users give ``{}``.
    """
    if user is None or not getattr(user, "is_authenticated", False):
        return {}
    identity: dict[str, Any] = {}
    key = getattr(user, "pk", None)
    if key is None:
        key = getattr(user, "id", None)
    if key is None and callable(getattr(user, "get_id", None)):
        key = user.get_id()
    if key is None:
        key = _starlette_user_key(user)
    if key is not None and str(key).strip():
        identity["user_id"] = str(key)
    email = getattr(user, "email", None)
    if isinstance(email, str) and email.strip():
        identity["email"] = email.strip()
    return identity


def _starlette_user_key(user: Any) -> str | None:
    # Starlette's BaseUser names its unique key `identity` (SimpleUser: its username); older
    # Starlette versions gave SimpleUser only `username`, and the base class's property raises.
    for name in ("identity", "username"):
        try:
            key = getattr(user, name, None)
        except Exception:
            continue
        if isinstance(key, str) and key.strip():
            return key
    return None
