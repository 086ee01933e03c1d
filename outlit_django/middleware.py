"""``OutlitMiddleware``: gives every request ``request.outlit``, a tracker bound to the request.

``request.outlit`` has the client's tracking methods. A call that names no identity gets the
request's identity (by default the authenticated user's ``user_id`` and ``email``), looked up
only when a call needs it. The middleware runs natively under WSGI and ASGI: on the request
path it only builds a small object, with no I/O and no thread hop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from weakref import ref

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.utils.functional import LazyObject, empty

from outlit import BoundTracker
from outlit._log import get_logger
from outlit._tracker import lookup_tracker

from . import asgi, conf
from .client import _proxy, get_client, resolved_options
from .identity import EARLY_LOOKUP, default_identity

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponseBase

    GetResponse = Callable[[HttpRequest], HttpResponseBase]
    AsyncGetResponse = Callable[[HttpRequest], Awaitable[HttpResponseBase]]


logger = get_logger("outlit.django")


def request_tracker(request: HttpRequest) -> BoundTracker:
    """A tracker for ``request``: the process-wide client, with the request's identity filled
    in by calls that name none (``IDENTIFY_USER``)."""
    settings = conf.get_settings()
    client = _proxy._client  # get_client() without the call, once the client exists
    if client is None:
        client = get_client()
    identity = settings.identity
    # What client.bind() returns, built directly (bind() imports BoundTracker on every call,
    # which costs more than the rest of this function). The identity is looked up only if a
    # call needs it, from a weak reference to the request (see identity.through_reference).
    if identity is None:
        return BoundTracker(client, None)
    try:
        request_ref = ref(request)
    except TypeError:  # a stand-in request (a test's) that takes no weak reference
        return lookup_tracker(client, identity, request)
    return lookup_tracker(client, settings.lookup, request_ref)


class OutlitMiddleware:
    """Sets ``request.outlit``. Place it after ``AuthenticationMiddleware``; it needs
    ``"outlit_django"`` in ``INSTALLED_APPS``."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: GetResponse | AsyncGetResponse) -> None:
        # The app's ready() wires identify-on-login, the settings reset and the system checks:
        # without the app they would silently do nothing.
        if not apps.is_installed("outlit_django"):
            raise ImproperlyConfigured(
                'OutlitMiddleware needs the "outlit_django" app: add "outlit_django" to '
                "INSTALLED_APPS (without it, logins send no identify, changes to "
                "settings.OUTLIT are not picked up, and manage.py check skips Outlit's checks)."
            )
        # Settings the client would refuse fail here, when the server loads the middleware,
        # instead of on the first request; so do the integration's own switches and timeout,
        # which would otherwise fall back to their defaults unsaid (servers do not run the
        # system checks). The client itself is still created lazily.
        resolved_options()
        from .checks import integration_errors

        errors = integration_errors()
        if errors:
            raise ImproperlyConfigured(f"{errors[0].msg} {errors[0].hint}")
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        # Under ASGI, the first request checks once that OutlitLifespan flushes at shutdown.
        self.check_lifespan = self.is_async
        # Django wraps a sync process_view in a thread hop under ASGI: give each mode its own.
        self.process_view: Callable[..., Any]
        if self.is_async:
            markcoroutinefunction(self)
            self.process_view = self._aprocess_view
        else:
            self.process_view = self._process_view

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        request.outlit = request_tracker(request)  # type: ignore[attr-defined]
        return self.get_response(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        if self.check_lifespan:
            self.check_lifespan = False
            asgi.warn_without_lifespan()
        request.outlit = request_tracker(request)  # type: ignore[attr-defined]
        response: HttpResponseBase = await self.get_response(request)  # type: ignore[misc]
        return response

    def _process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., Any],
        view_args: tuple[Any, ...],
        view_kwargs: dict[str, Any],
    ) -> None:
        # An async view under WSGI runs inside an event loop, where Django refuses the
        # database query that loading request.user may need. Load the user now, in sync code.
        try:
            is_async = _async_views[view_func]  # _is_async_view(), without the call once known
        except (KeyError, TypeError):
            is_async = _is_async_view(view_func)
        if is_async:
            identity = conf.get_settings().identity
            if identity is not None:
                _load_user(request)
                _look_up_again_if_too_early(request)
                if identity is not default_identity:
                    # An identity function of the app's own may query the database as well
                    # (request.user.organization): look the identity up now, in sync code.
                    _resolve_identity(request)
        return None

    async def _aprocess_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., Any],
        view_args: tuple[Any, ...],
        view_kwargs: dict[str, Any],
    ) -> None:
        # Same for an async view under ASGI, with Django's async user lookup. Sync views run
        # in a thread, where the lazy request.user works as it is.
        try:
            is_async = _async_views[view_func]  # _is_async_view(), without the call once known
        except (KeyError, TypeError):
            is_async = _is_async_view(view_func)
        identity = conf.get_settings().identity if is_async else None
        if identity is not None:
            user = getattr(request, "user", None)
            if isinstance(user, LazyObject) and user._wrapped is empty:  # not loaded yet
                auser = getattr(request, "auser", None)
                if auser is not None and _is_the_sessions_user(user):
                    try:
                        loaded = await auser()
                    except Exception:
                        _could_not_load(request)
                    else:
                        # What loading it would give (both read the session), without a query
                        # in the event loop. The object stays: request.user is not replaced.
                        user._wrapped = loaded
                else:  # another middleware's lazy user, or Django 4.2 (no request.auser())
                    await sync_to_async(_load_user)(request)
            # A user that another middleware set (an API token's, say) is left as it is.
            _look_up_again_if_too_early(request)
            if identity is not default_identity:
                # An identity function of the app's own may query the database as well
                # (request.user.organization), which Django refuses inside the event loop:
                # look the identity up now, in Django's sync thread.
                await sync_to_async(_resolve_identity)(request)
        return None


# Views live as long as the URL conf: the answer is kept (process_view asks on every request).
_async_views: dict[Callable[..., Any], bool] = {}
_MAX_REMEMBERED_VIEWS = 1024


def _is_async_view(view_func: Callable[..., Any]) -> bool:
    try:
        return _async_views[view_func]
    except KeyError:
        answer = iscoroutinefunction(view_func)
        if len(_async_views) < _MAX_REMEMBERED_VIEWS:
            _async_views[view_func] = answer
        return answer
    except TypeError:  # an unhashable callable
        return iscoroutinefunction(view_func)


def _is_the_sessions_user(user: Any) -> bool:
    """Whether ``user`` is the lazy user of Django's AuthenticationMiddleware, which
    ``request.auser()`` loads from the same session (another middleware's lazy user may be
    someone else: an API token's, say)."""
    setup = vars(user).get("_setupfunc")
    return getattr(setup, "__module__", None) == "django.contrib.auth.middleware"


def _load_user(request: HttpRequest) -> None:
    try:
        user = getattr(request, "user", None)
        if user is not None:
            _ = user.is_authenticated
    except Exception:
        _could_not_load(request)


def _look_up_again_if_too_early(request: HttpRequest) -> None:
    """A call from async code ahead of the view (an async middleware) found the user not
    loaded and was dropped: now that it is, the view's calls get the identity."""
    if request.__dict__.pop(EARLY_LOOKUP, False):
        tracker = request.__dict__.get("outlit")
        if isinstance(tracker, BoundTracker):
            tracker._source = request_tracker(request)._source
            tracker._ids = None


def _resolve_identity(request: HttpRequest) -> None:
    tracker = request.__dict__.get("outlit")
    if isinstance(tracker, BoundTracker) and tracker._ids is None:
        tracker._resolve()  # logs what the function raises; never raises itself


def _could_not_load(request: HttpRequest) -> None:
    # Loading the user ahead of the view is outlit's own idea: a view that never tracks must
    # not fail for it (the database may be down, say). A view or identity function that reads
    # request.user meets the error itself; the identity function's is logged by the tracker.
    logger.debug(
        "outlit: could not load request.user before the async view of %s",
        request.path,
        exc_info=True,
    )
