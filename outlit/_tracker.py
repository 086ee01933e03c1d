"""Request-bound trackers: the client's methods with the current user's identity filled in.

The framework adapters create one :class:`BoundTracker` per request with a function that finds
the request's user. The identity is looked up at most once, and only when a call needs it.
A call that names any identity field of its own is sent exactly as given: identities are
never mixed (an admin tracking an event for another user's email does not get the admin's id).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ._compiled import speedups
from ._events import (
    BILLING_IDENTITY,
    IDENTIFY_IDENTITY,
    STAGE_IDENTITY,
    TRACK_IDENTITY,
    identity_text,
)
from ._exceptions import InvalidEventError
from ._log import get_logger

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._client import Outlit, Timestamp
    from ._types import (
        BillingOptions,
        DeviceId,
        NumericId,
        ServerIdentifyOptions,
        StageOptions,
    )
    from ._worker import FlushResult

logger = get_logger("outlit")

IdentitySource = Mapping[str, Any] | Callable[[], Mapping[str, Any] | None] | None

#: The identity keys a resolver may return.
IDENTITY_KEYS = TRACK_IDENTITY


_NO_IDS: tuple[Any, ...] = (None,) * len(TRACK_IDENTITY)
# The identity function failed (raised, or gave nothing usable that it meant to): the same
# Nones, told apart by identity. A call that names no identity is then not sent, and counted
# as dropped, instead of raising into the request as a call without any identity does: the
# failure is the identity function's (already logged), often a database or session store that
# is down, and tracking must not turn the request into a server error.
_FAILED_IDS: tuple[Any, ...] = tuple(None for _ in TRACK_IDENTITY)


class _NotHere:
    """What an adapter's lookup returns where it cannot know the identity (asked on another
    thread than its request's, say): no identity for that call, and nothing kept, so that the
    tracker's own request still finds its user. Falsy, like the no-identity answer it is."""

    __slots__ = ()

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "outlit._tracker.NOT_HERE"


NOT_HERE = _NotHere()

# What a call that names no identity raises when the bound identity is none.
_NO_IDENTITY = (
    "track() needs at least one of email, user_id, fingerprint, customer_id or "
    "customer_domain: the call names none, and the request has none to fill in "
    "(no signed-in user, or the identity function found none)"
)

# With the compiled fast paths, BoundTracker is built on their Tracker, which holds the three
# attributes and stands in for track() below (see the end of this module).
if TYPE_CHECKING:
    _TrackerBase = object
else:
    _TrackerBase = object if speedups is None else speedups.Tracker


class BoundTracker(_TrackerBase):
    """Has every tracking method of :class:`~outlit.Outlit`; fills in a default identity."""

    __slots__ = () if speedups is not None else ("_client", "_ids", "_source")

    def __init__(self, client: Outlit, identity: IdentitySource = None) -> None:
        # The identity source: a mapping, a function of no argument, None, or (made by
        # lookup_tracker) a (function, argument) pair, which callers cannot pass.
        source: Any = identity
        if type(source) is tuple:
            raise TypeError(
                "identity must be a mapping of identity fields, a function returning one, or "
                f"None, got a tuple: {source!r}"
            )
        self._client = client
        self._source = source
        # The resolved identity as track()'s five arguments (see _resolve); None until then.
        self._ids: tuple[Any, ...] | None = None

    @property
    def client(self) -> Outlit:
        return self._client

    @property
    def user(self) -> _BoundUser:
        """``identify``, ``activate``, ``engaged`` and ``inactive``, with the bound user."""
        # Made on use and not kept: a helper stored here would form a reference cycle with
        # the tracker, leaving every request's objects to the cyclic garbage collector.
        return _BoundUser(self)

    @property
    def customer(self) -> _BoundCustomer:
        """``trialing``, ``paid`` and ``churned``, with the bound customer."""
        return _BoundCustomer(self)

    @property
    def identity(self) -> dict[str, Any]:
        """The default identity (resolved once; {} when there is none)."""
        return dict(self._resolved())

    def _resolved(self) -> dict[str, Any]:
        """The resolved identity as a dict of its non-empty fields."""
        ids = self._ids
        if ids is None:
            ids = self._resolve()
        return {
            name: value
            for name, value in zip(TRACK_IDENTITY, ids, strict=True)
            if value is not None
        }

    def _resolve(self) -> tuple[Any, ...]:
        """Look the identity up (once) as track()'s five identity arguments, in
        TRACK_IDENTITY order, None for a field the source leaves out or empty."""
        # The source is read before the identity and dropped after it is stored, so a thread
        # that finds no source also finds the identity another thread stored.
        source = self._source
        ids = self._ids
        if ids is not None:
            return ids
        try:
            if type(source) is tuple:
                found = source[0](source[1])
            else:
                found = source() if callable(source) else source
            if found is NOT_HERE:
                return _NO_IDS  # for this call only: nothing kept (see _NotHere)
            ids = _read_identity(found) if found else _NO_IDS
        except Exception as exc:
            # The identity hook is app code; a failure there, or an answer that cannot be
            # read, must not break the request.
            ids = _identity_raised(exc)
        self._ids = ids
        # Let go of the source (often holding the request, which may hold this tracker).
        self._source = None
        return ids

    def _call(
        self,
        method: Callable[..., None],
        kwargs: Any,
        named: tuple[str, ...],
        fields: tuple[str, ...] | None = None,
    ) -> None:
        """Call the client's ``method`` with ``kwargs``, filling ``fields`` (default: ``named``)
        from the bound identity unless the call names any of ``named`` itself; a field the call
        gives is never replaced.

        ``kwargs`` is a method's own ``**kwargs`` (a new dict on every call): filled in place.
        """
        for name in named:
            if kwargs.get(name) is not None:
                method(**kwargs)
                return
        ids = self._ids
        if ids is None:
            ids = self._resolve()
        if ids is _FAILED_IDS:
            self._client._note_identity_failed()
            return
        identity = self._resolved()
        for name in fields or named:
            value = identity.get(name)
            if value is not None and kwargs.get(name) is None:
                kwargs[name] = value
        method(**kwargs)

    def track(
        self,
        *,
        event_name: str,
        email: str | None = None,
        user_id: NumericId | None = None,
        fingerprint: DeviceId | None = None,
        customer_id: NumericId | None = None,
        customer_domain: str | None = None,
        properties: Mapping[str, Any] | None = None,
        timestamp: Timestamp = None,
    ) -> None:
        """:meth:`Outlit.track`, with the bound identity when the call names none."""
        # Spelled out rather than **kwargs: a call that names no identity (the usual one, on
        # the request path) then costs a comparison per field and one tuple unpacking.
        if (
            email is None
            and user_id is None
            and fingerprint is None
            and customer_id is None
            and customer_domain is None
        ):
            ids = self._ids
            if ids is None:
                ids = self._resolve()
            if ids is _NO_IDS:
                raise InvalidEventError(_NO_IDENTITY)
            if ids is _FAILED_IDS:
                self._client._note_identity_failed()
                return
            email, user_id, fingerprint, customer_id, customer_domain = ids
        self._client.track(
            event_name=event_name,
            email=email,
            user_id=user_id,
            fingerprint=fingerprint,
            customer_id=customer_id,
            customer_domain=customer_domain,
            properties=properties,
            timestamp=timestamp,
        )

    def identify(self, **kwargs: Unpack[ServerIdentifyOptions]) -> None:
        """:meth:`Outlit.identify`, with the bound user when the call names no email/user_id.

        The bound customer fields come along only when the call names no customer itself."""
        user_fields: tuple[str, ...] = ("email", "user_id", "fingerprint")
        if kwargs.get("customer_id") is None and kwargs.get("customer_domain") is None:
            user_fields = TRACK_IDENTITY
        self._call(self._client.identify, kwargs, IDENTIFY_IDENTITY, user_fields)

    def flush(self, timeout: float | None = None) -> FlushResult:
        return self._client.flush(timeout)

    async def aflush(self, timeout: float | None = None) -> FlushResult:
        return await self._client.aflush(timeout)

    @property
    def queue_size(self) -> int:
        return self._client.queue_size

    def __repr__(self) -> str:
        return f"<BoundTracker identity={sorted(self.identity)} client={self._client!r}>"

    def __getstate__(self) -> tuple[None, dict[str, Any]]:
        # copy.copy() and pickle: the attributes, as slots, with or without the compiled base.
        return None, {"_client": self._client, "_ids": self._ids, "_source": self._source}


def _lookup_tracker(client: Outlit, lookup: Callable[[Any], Any], subject: Any, /) -> BoundTracker:
    """A tracker whose identity is ``lookup(subject)`` (a mapping, or None for none), looked up
    when a call first needs it: what an adapter makes on every request, from the request.

    Built without ``__init__``, and with a pair instead of a ``functools.partial`` of
    ``lookup`` (a partial alone cost about 1,600 instructions, the tracker's ``__init__``
    1,800). The pair is one value, so that an adapter can swap it in one assignment, as
    FastAPI's ``OutlitMiddleware`` does once a request is over."""
    tracker: BoundTracker = _new(BoundTracker)
    tracker._client = client
    tracker._source = (lookup, subject)
    tracker._ids = None
    return tracker


lookup_tracker: Callable[[Outlit, Callable[[Any], Any], Any], BoundTracker] = _lookup_tracker
_new = BoundTracker.__new__


# What the log says after an identity function failed.
_WITHOUT_IDENTITY = (
    "calls that name no identity of their own are not sent (counted as dropped, reason "
    "identity_failed)"
)


def _identity_raised(exc: BaseException) -> tuple[Any, ...]:
    """Log what the identity function (or the reading of its answer) raised; the identity
    failed."""
    logger.error(
        "outlit: the identity function raised, or its answer could not be read; "
        + _WITHOUT_IDENTITY,
        exc_info=exc,
    )
    return _FAILED_IDS


def is_async_callable(function: Any) -> bool:
    """Whether calling ``function`` gives a coroutine: an ``async def`` function, a partial of
    one, or an object with an async ``__call__`` (the adapters refuse or await such identity
    functions)."""
    import functools
    import inspect  # only when an adapter is set up: `import outlit` stays cheap

    while isinstance(function, functools.partial):
        function = function.func
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
        getattr(function, "__call__", None)  # noqa: B004 - objects with an async __call__
    )


def failed_tracker(client: Outlit) -> BoundTracker:
    """A tracker whose identity function has already failed (and been logged) elsewhere, as an
    async one awaited by an adapter: calls that name no identity are dropped and counted."""
    tracker: BoundTracker = _new(BoundTracker)
    tracker._client = client
    tracker._source = None
    tracker._ids = _FAILED_IDS
    return tracker


_LOGIN_WITHOUT_IDENTITY = "the login's identify is sent with the user's own fields"


def login_identity(lookup: Callable[[], Any]) -> dict[str, Any]:
    """For identify-on-login: the usable identity fields of what the identity function
    ``lookup`` returns, checked as a tracker checks them (a value of a wrong type is left out,
    logged). ``{}`` when it finds none, raises or answers something else than a mapping
    (logged): the adapters then send the login's identify with the user's own fields."""
    try:
        found = lookup()
        ids = _identity_args(found, _LOGIN_WITHOUT_IDENTITY) if found else _NO_IDS
    except Exception:
        logger.exception(
            "outlit: the identity function raised during login, or its answer could not be "
            "read; " + _LOGIN_WITHOUT_IDENTITY
        )
        return {}
    return {
        name: value for name, value in zip(TRACK_IDENTITY, ids, strict=True) if value is not None
    }


def _identity_args(found: Any, failed: str = _WITHOUT_IDENTITY) -> tuple[Any, ...]:
    """track()'s five identity arguments from an identity source's answer; ``failed`` says
    in the log what follows when the answer is unusable."""
    if type(found) is not dict:
        if not isinstance(found, Mapping):
            advice = ""
            if type(found).__name__ == "coroutine":
                found.close()  # never awaited: closed here rather than warned about at exit
                advice = " (a sync function returning a coroutine: make it `async def`, where "
                advice += "async identity functions are supported, or return a dict)"
            logger.error(
                "outlit: the identity function returned a %s, not a mapping of identity "
                "fields (email, user_id, fingerprint, customer_id, customer_domain)%s; %s",
                type(found).__name__,
                advice,
                failed,
            )
            return _FAILED_IDS
        found = dict(found)
    # Read straight into the tuple, with no dict in between: this runs on most requests that
    # track, and a loop over the found keys costs several times more.
    get = found.get
    ids = (
        get("email"),
        get("user_id"),
        get("fingerprint"),
        get("customer_id"),
        get("customer_domain"),
    )
    for value in ids:
        if value is not None and (type(value) is not str or not value):
            return _checked_args(ids)
    if not any(ids):
        return _no_identity_field(found, failed)
    return ids


# What _resolve() reads an answer with: the compiled fast path when there is one, which hands
# every answer but a plain dict of usable strings to _identity_args.
_read_identity: Callable[[Any], tuple[Any, ...]] = _identity_args
if speedups is not None:
    speedups.use_identity_args(_identity_args)
    _read_identity = speedups.identity_args


def _no_identity_field(found: dict[Any, Any], failed: str) -> tuple[Any, ...]:
    """An answer with no identity field set: no identity (as for an anonymous request), unless
    it names no identity field at all but gives other keys values: then the identity function
    spells them otherwise (``userId``, ``user``), which is logged and fails."""
    if any(key in IDENTITY_KEYS for key in found):
        return _NO_IDS  # {"user_id": None, "name": None}: anonymous, spelled right
    unknown = [key for key, value in found.items() if value]
    if not unknown:
        return _NO_IDS
    import difflib  # only for a misspelled answer: `import outlit` stays cheap

    hints = []
    for key in unknown:
        text = str(key)
        snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in text).lstrip("_")
        close = difflib.get_close_matches(snake, IDENTITY_KEYS, n=1, cutoff=0.6)
        if close:
            hints.append(f"{text!r} -> {close[0]!r}")
    logger.error(
        "outlit: the identity function's answer names none of the identity fields (email, "
        "user_id, fingerprint, customer_id, customer_domain), only %s%s; %s",
        ", ".join(sorted(repr(key) for key in unknown)),
        f" (did you mean {', '.join(hints)}?)" if hints else "",
        failed,
    )
    return _FAILED_IDS


def _checked_args(ids: tuple[Any, ...]) -> tuple[Any, ...]:
    """``ids`` with empty values as None, ids of other types as strings where they have one
    (an int or UUID key), and a value of any other type left out (logged): the other fields
    are still used. When none is left and one was left out for its type, the identity
    function failed (:data:`_FAILED_IDS`)."""
    checked: list[Any] = []
    refused = False
    for name, value in zip(TRACK_IDENTITY, ids, strict=True):
        if value is not None:
            try:
                value = identity_text(name, value)
            except InvalidEventError as exc:
                logger.error("outlit: the identity function's %s; left out of the identity", exc)
                value = None
                refused = True
            except Exception:  # a lazy value that cannot be loaded, say
                logger.exception(
                    "outlit: the identity function's %s could not be read; left out of the "
                    "identity",
                    name,
                )
                value = None
                refused = True
        checked.append(value)
    if refused and not any(checked):
        return _FAILED_IDS
    return tuple(checked)


class _BoundUser:
    __slots__ = ("_tracker",)

    def __init__(self, tracker: BoundTracker) -> None:
        self._tracker = tracker

    def identify(self, **kwargs: Unpack[ServerIdentifyOptions]) -> None:
        self._tracker.identify(**kwargs)

    def activate(self, **kwargs: Unpack[StageOptions]) -> None:
        t = self._tracker
        t._call(t._client.user.activate, kwargs, STAGE_IDENTITY)

    def engaged(self, **kwargs: Unpack[StageOptions]) -> None:
        t = self._tracker
        t._call(t._client.user.engaged, kwargs, STAGE_IDENTITY)

    def inactive(self, **kwargs: Unpack[StageOptions]) -> None:
        t = self._tracker
        t._call(t._client.user.inactive, kwargs, STAGE_IDENTITY)


class _BoundCustomer:
    __slots__ = ("_tracker",)

    def __init__(self, tracker: BoundTracker) -> None:
        self._tracker = tracker

    def trialing(self, **kwargs: Unpack[BillingOptions]) -> None:
        t = self._tracker
        t._call(t._client.customer.trialing, kwargs, BILLING_IDENTITY)

    def paid(self, **kwargs: Unpack[BillingOptions]) -> None:
        t = self._tracker
        t._call(t._client.customer.paid, kwargs, BILLING_IDENTITY)

    def churned(self, **kwargs: Unpack[BillingOptions]) -> None:
        t = self._tracker
        t._call(t._client.customer.churned, kwargs, BILLING_IDENTITY)


def user_identity(user: Any) -> dict[str, Any]:
    """The identity of an authenticated user object (Django, Flask-Login, Starlette...).

    ``user_id`` is the string form of ``pk`` (else ``id``, else ``get_id()``); ``email`` is
    added when the object has a non-blank one (in the field a Django user model names with
    ``EMAIL_FIELD``). Anonymous users give ``{}``.
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
    email_field = "email"
    name_email_field = getattr(user, "get_email_field_name", None)  # Django user models
    if callable(name_email_field):
        try:
            named = name_email_field()
        except Exception:  # app code: a failure only costs the email
            named = None
        if isinstance(named, str) and named:  # not, say, a test double's MagicMock
            email_field = named
    email = getattr(user, email_field, None)
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


# The compiled track() and lookup_tracker (outlit/_speedups.c) stand in for the Python ones:
# the same call queues the same event. Its track() queues the usual call itself; a call with
# odd arguments goes to the Python track() below, and one for any other client (a subclass of
# Outlit, a proxy, a track() a test replaced) to that client's track(), as the Python one calls it.
_python_track = BoundTracker.track  # kept: the compiled track() hands odd calls to it
if speedups is not None:
    from ._client import Outlit as _Outlit

    speedups.use_tracker(
        _Outlit,
        _Outlit.__dict__["track"],
        BoundTracker,
        _python_track,
        _NO_IDS,
        _FAILED_IDS,
        NOT_HERE,
        InvalidEventError,
        _NO_IDENTITY,
        _identity_raised,
    )
    BoundTracker.track = speedups.Tracker.track  # type: ignore[method-assign]
    lookup_tracker = speedups.lookup_tracker
