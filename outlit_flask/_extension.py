"""The Flask extension: one Outlit client per app, ``g.outlit`` in every request, an identify
when a user logs in, and an optional bounded flush when the app context tears down."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from flask import Flask, current_app, g, has_app_context, has_request_context, request

from outlit import BoundTracker, OptionError
from outlit import Outlit as OutlitClient
from outlit._log import get_logger
from outlit._options import OPTION_NAMES
from outlit._tracker import (
    NOT_HERE,
    is_async_callable,
    login_identity,
    lookup_tracker,
    user_identity,
)

from ._cli import outlit_cli
from ._config import CONFIG_DEFAULTS, FlaskSettings, read_config
from ._identity import IdentityLoader, current_user_identity
from .signals import teardown_flushed

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from outlit import (
        ClientStats,
        CustomerAPI,
        FlushResult,
        RetryPolicy,
        ServerIdentifyOptions,
        ServerTrackOptions,
        Transport,
        UserAPI,
    )

#: The key of the app's client in ``app.extensions``.
EXTENSION_KEY = "outlit"

logger = get_logger("outlit")

LoaderT = TypeVar("LoaderT", bound=IdentityLoader)

# The app context's `g` and the request themselves, without the proxies: werkzeug's LocalProxy
# method, bound once (and the proxy itself should a Flask version have none there).
_current_g: Callable[[], Any] = getattr(g, "_get_current_object", lambda: g)
_current_request: Callable[[], Any] = getattr(request, "_get_current_object", lambda: request)
_current_app: Callable[[], Any] = getattr(current_app, "_get_current_object", lambda: current_app)

# Where g keeps (request, tracker) for g.outlit: not under "outlit", so that every access goes
# through the app's globals class and a new request never sees an earlier one's tracker.
_G_KEY = "_outlit_tracker"


def _lookup_in(subject: tuple[Any, Any]) -> Any:
    """The identity a loader finds, asked only in the request the tracker was made for: a
    loader reads whatever request is current, so a tracker kept past its request, or used on
    another thread, would find another request's user, or none."""
    loader, made_for = subject
    try:
        current = _current_request()
    except RuntimeError:  # no request at all
        current = None
    if current is made_for:
        return loader()
    logger.warning(
        "outlit: g.outlit was used outside the request it was made for (after it ended, or "
        "on another thread), where that request's user is unknown: pass the identity to the "
        "call, or read g.outlit.identity in the request first (it is kept)"
    )
    return NOT_HERE  # no identity here, and none kept: the request itself still finds its user


class Outlit:
    """Outlit for Flask apps: ``Outlit(app)``, or ``Outlit()`` then ``init_app(app)``.

    Each app gets its own client, built from its ``OUTLIT_*`` config keys and kept in
    ``app.extensions["outlit"]``; the extension object holds no app, so one instance serves
    any number of apps. Keyword arguments given here are defaults for every app's config::

        outlit = Outlit(flush_interval=5.0)
        outlit.init_app(app)                       # app.config["OUTLIT_PUBLIC_KEY"] = "pk_..."

        @app.post("/export")
        def export():
            g.outlit.track(event_name="report_exported")   # the logged-in user's identity
            outlit.track(event_name="export_queued", customer_id="cust_1")   # the app's client
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        identity_loader: IdentityLoader | None = None,
        public_key: str | None = None,
        api_host: str | None = None,
        flush_interval: float | None = None,
        max_batch_size: int | None = None,
        timeout: float | None = None,
        max_queue_size: int | None = None,
        enabled: bool | None = None,
        shutdown_timeout: float | None = None,
        max_requests_per_second: float | None = None,
        retry: RetryPolicy | None = None,
        transport: Transport | None = None,
        identify_user: bool | None = None,
        identify_on_login: bool | None = None,
        flush_on_teardown: bool | None = None,
        teardown_flush_timeout: float | None = None,
    ) -> None:
        given: dict[str, Any] = {
            "public_key": public_key,
            "api_host": api_host,
            "flush_interval": flush_interval,
            "max_batch_size": max_batch_size,
            "timeout": timeout,
            "max_queue_size": max_queue_size,
            "enabled": enabled,
            "shutdown_timeout": shutdown_timeout,
            "max_requests_per_second": max_requests_per_second,
            "retry": retry,
            "transport": transport,
            "identify_user": identify_user,
            "identify_on_login": identify_on_login,
            "flush_on_teardown": flush_on_teardown,
            "teardown_flush_timeout": teardown_flush_timeout,
        }
        self._config_defaults = {
            f"OUTLIT_{name.upper()}": value for name, value in given.items() if value is not None
        }
        self._identity_loader = (
            None if identity_loader is None else _checked_loader(identity_loader)
        )
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Build the app's client from its config and attach the request hooks and commands.

        Set the ``OUTLIT_*`` keys before calling it. Raises ``RuntimeError`` when the app
        already has Outlit, and :class:`outlit.OptionError` (a ``ValueError``) for bad config.
        """
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                f"Outlit is already set up on app {app.name!r}: call init_app() once per app "
                "and import that extension object wherever you track"
            )
        for key, default in CONFIG_DEFAULTS.items():
            app.config.setdefault(key, self._config_defaults.get(key, default))
        try:
            kwargs, settings = read_config(app.config)
            client = OutlitClient(**kwargs)
        except OptionError as exc:
            hint = ""
            if app.config.get("OUTLIT_PUBLIC_KEY") is None and "public_key" in str(exc):
                hint = (
                    " Set app.config['OUTLIT_PUBLIC_KEY'] (or the OUTLIT_PUBLIC_KEY environment"
                    " variable), or OUTLIT_ENABLED = False to send nothing."
                )
            raise OptionError(
                f"Outlit config of app {app.name!r}: {_naming_the_key(exc, app.config)}.{hint}"
            ) from exc
        app.extensions[EXTENSION_KEY] = client
        hooks = _AppHooks(self, client, settings)
        # g.outlit is made when first read, by the class Flask makes g from: a request that
        # never tracks pays nothing, and it is there for every hook, whenever registered.
        app.app_ctx_globals_class = _globals_class(app.app_ctx_globals_class, hooks)
        if settings.flush_on_teardown:
            # Flask runs these in reverse order of registration: first in the list, the flush
            # runs last, after the app's own teardowns (registered before init_app or after),
            # so that what they track goes out with the request too.
            app.teardown_appcontext_funcs.insert(0, hooks.flush_on_teardown)
        hooks.connect_login_signals(app)
        app.cli.add_command(outlit_cli)

    def identity_loader(self, loader: LoaderT) -> LoaderT:
        """Register the function that says who the current user is, for ``g.outlit``.

        It takes no arguments, reads the request the Flask way and returns a dict of email,
        user_id, fingerprint, customer_id, customer_domain (or None). It replaces the built-in
        Flask-Login lookup; see :func:`outlit_flask.current_user_identity` to build on it.
        """
        self._identity_loader = _checked_loader(loader)
        return loader

    # -- the current app's client ------------------------------------------------------

    @property
    def client(self) -> OutlitClient:
        """The current app's :class:`outlit.Outlit` client (needs an application context)."""
        # The app itself rather than current_app's proxy, whose every attribute read costs
        # about as much as the tracking call.
        try:
            extensions = _current_app().extensions
        except RuntimeError:  # outside an app context
            raise RuntimeError(
                "Outlit needs an application context to find the app's client: track inside a "
                "request or a CLI command, or in 'with app.app_context():' (and make sure "
                "outlit.init_app(app) was called), or use the app's client, "
                "app.extensions['outlit'], directly"
            ) from None
        client = extensions.get(EXTENSION_KEY)
        if client is None:
            raise RuntimeError(
                f"Outlit is not set up on app {current_app.name!r}: call outlit.init_app(app) "
                "(or create Outlit(app)) before tracking"
            )
        return cast(OutlitClient, client)

    def track(self, **kwargs: Unpack[ServerTrackOptions]) -> None:
        """:meth:`outlit.Outlit.track` on the current app's client (no identity filled in)."""
        self.client.track(**kwargs)

    def identify(self, **kwargs: Unpack[ServerIdentifyOptions]) -> None:
        """:meth:`outlit.Outlit.identify` on the current app's client."""
        self.client.identify(**kwargs)

    @property
    def user(self) -> UserAPI:
        """``outlit.user.activate/engaged/inactive/identify`` on the current app's client."""
        return self.client.user

    @property
    def customer(self) -> CustomerAPI:
        """``outlit.customer.trialing/paid/churned`` on the current app's client."""
        return self.client.customer

    def flush(self, timeout: float | None = None) -> FlushResult:
        """Send what the current app's client has queued; see :meth:`outlit.Outlit.flush`."""
        return self.client.flush(timeout)

    async def aflush(self, timeout: float | None = None) -> FlushResult:
        """:meth:`flush` for ``async def`` views."""
        return await self.client.aflush(timeout)

    def shutdown(self, timeout: float | None = None) -> FlushResult:
        """Flush and stop the current app's client; it refuses tracking calls afterwards."""
        return self.client.shutdown(timeout)

    @property
    def queue_size(self) -> int:
        return self.client.queue_size

    @property
    def stats(self) -> ClientStats:
        return self.client.stats

    def __repr__(self) -> str:
        loader = getattr(self._identity_loader, "__qualname__", None)
        return f"<outlit_flask.Outlit identity_loader={loader}>"


class _AppHooks:
    """What init_app attaches to one app. The app holds it (through its ``g`` class); it holds
    no reference to the app, and looks the loader up on the extension for each tracker so that
    ``@outlit.identity_loader`` may come after ``Outlit(app)``."""

    def __init__(self, extension: Outlit, client: OutlitClient, settings: FlaskSettings) -> None:
        self._extension = extension
        self._client = client
        self._settings = settings
        self._identify_user = settings.identify_user
        # Without identity filling every request can share one tracker: it holds no state.
        self._anonymous = client.bind(None)

    def __get__(self, globals_: Any, owner: Any = None) -> Any:
        """``g.outlit``: the current request's tracker, made on first use and kept in ``g`` for
        the rest of the request. ``AttributeError`` outside a request, as before any use.

        The hooks are themselves the ``outlit`` attribute of the app's ``g`` class, a non-data
        descriptor: a read finds it on the class at once, where a ``__getattr__`` would run
        only after a failed lookup had made and discarded an AttributeError (4,700
        instructions more per request). A value assigned to ``g.outlit`` still wins."""
        if globals_ is None:
            return self
        try:
            current = _current_request()
        except RuntimeError:  # no request: g of a CLI command or a bare app context
            raise AttributeError("outlit (g.outlit exists while a request is handled)") from None
        kept = globals_.__dict__.get(_G_KEY)
        # The request is compared because an app context pushed around several requests (a
        # test's `with app.app_context()`) shares one g among them.
        if kept is not None and kept[0] is current:
            tracker: BoundTracker = kept[1]
            return tracker
        if self._identify_user:
            # What client.bind() returns, built directly (bind() imports on every call). The
            # loader is read now (it may be registered after init_app), and asked only in
            # this request (see _lookup_in).
            loader = self._extension._identity_loader
            if loader is None:
                loader = current_user_identity
            tracker = lookup_tracker(self._client, _lookup_in, (loader, current))
        else:
            tracker = self._anonymous
        globals_.__dict__[_G_KEY] = (current, tracker)
        return tracker

    def _loader(self) -> Any:
        loader = self._extension._identity_loader
        return current_user_identity if loader is None else loader

    def refresh_tracker(self) -> None:
        """The user logged in or out: the request's tracker, if made, looks its identity up
        again on next use. In place, since a view may hold it."""
        kept = _current_g().__dict__.get(_G_KEY)
        if kept is None or not has_request_context() or kept[0] is not _current_request():
            return
        tracker: BoundTracker = kept[1]
        # The source first: a lookup that finds no identity yet then finds this source.
        tracker._source = (_lookup_in, (self._loader(), kept[0]))
        tracker._ids = None

    def connect_login_signals(self, app: Flask) -> None:
        settings = self._settings
        if not (settings.identify_user or settings.identify_on_login):
            return
        try:
            from flask_login import (  # type: ignore[import-untyped, unused-ignore]
                user_logged_in,
                user_logged_out,
            )
        except ImportError:
            return
        # blinker keeps weak references to both: these receivers live as long as the app does.
        user_logged_in.connect(self.on_login, sender=app)
        if settings.identify_user:
            user_logged_out.connect(self.on_logout, sender=app)

    def on_login(self, app: Flask, user: Any = None, **extra: Any) -> None:
        if self._settings.identify_user and has_app_context():
            # The identity looked up before login_user() in this request is stale.
            self.refresh_tracker()
        if not self._settings.identify_on_login:
            return
        try:
            identity = user_identity(user)
            loader = self._extension._identity_loader
            if loader is not None:
                # Checked as g.outlit checks it; a failing loader costs only its own fields.
                identity.update(login_identity(loader))
            if identity.get("email") or identity.get("user_id"):
                # Outlit infers the discovered and signed_up stages from this identify.
                self._client.identify(**identity)
        except Exception:
            logger.exception("outlit: could not queue the identify for a login (the login went on)")

    def on_logout(self, app: Flask, user: Any = None, **extra: Any) -> None:
        if has_app_context():
            self.refresh_tracker()

    def flush_on_teardown(self, exc: BaseException | None) -> None:
        client = self._client
        try:
            if client.queue_size == 0:
                return
            # The response waits for this flush, so its bound is the short per-request one
            # (OUTLIT_TEARDOWN_FLUSH_TIMEOUT), not the exit-time OUTLIT_SHUTDOWN_TIMEOUT. What
            # is not delivered by then stays with the background worker, which goes on sending.
            result = client.flush(self._settings.teardown_flush_timeout)
        except Exception:
            logger.exception("outlit: the teardown flush failed; the events stay queued")
            return
        try:
            teardown_flushed.send(current_app._get_current_object(), result=result)  # type: ignore[attr-defined]
        except Exception:
            logger.exception("outlit: a teardown_flushed receiver raised")


def _globals_class(base: type[Any], hooks: _AppHooks) -> type[Any]:
    """The app's ``g`` class with ``outlit`` added: read, it is the request's tracker."""

    def get(self: Any, name: str, default: Any = None) -> Any:
        if name == "outlit" and name not in self.__dict__:
            return getattr(self, name, default)
        return base.get(self, name, default)

    def __contains__(self: Any, item: str) -> bool:
        if item == "outlit" and item not in self.__dict__:
            return hasattr(self, item)
        return bool(base.__contains__(self, item))

    base_getattr = getattr(base, "__getattr__", None)

    def __getattr__(self: Any, name: str) -> Any:
        # Reached for "outlit" only when the descriptor raised (no request): that error stands,
        # rather than whatever the base class answers for unknown names (None, in some apps).
        if name == "outlit":
            return hooks.__get__(self)  # raises the AttributeError that says why
        if base_getattr is None:
            raise AttributeError(name)
        return base_getattr(self, name)

    return type(
        f"Outlit{base.__name__.lstrip('_')}",
        (base,),
        {
            "outlit": hooks,
            "get": get,
            "__contains__": __contains__,
            "__getattr__": __getattr__,
        },
    )


def _checked_loader(loader: LoaderT) -> LoaderT:
    # Called synchronously on every request that needs the identity: an async one would only
    # give an unawaited coroutine there, request after request.
    if is_async_callable(loader):
        raise TypeError(
            f"the identity loader {getattr(loader, '__qualname__', loader)!r} is async; "
            "g.outlit calls it synchronously: register a plain function"
        )
    return loader


def _naming_the_key(exc: OptionError, config: Any) -> str:
    """The client's complaint about an option, naming the config key (``OUTLIT_TIMEOUT``, not
    the client's ``timeout``), or the environment variable the key and host fall back to."""
    message = str(exc).rstrip(".")
    option, _, complaint = message.partition(" ")
    if option not in OPTION_NAMES or not complaint:
        return message
    key = f"OUTLIT_{option.upper()}"
    if option in ("public_key", "api_host") and config.get(key) is None and os.environ.get(key):
        return f"the {key} environment variable {complaint}"
    return f"{key} {complaint}"
