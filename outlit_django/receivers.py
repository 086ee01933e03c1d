"""Django signal receivers: the integration's ties to Django's own lifecycle.

- ``setting_changed``: a new ``settings.OUTLIT`` replaces the process-wide client.
- ``user_logged_in``: one ``identify`` per login (``IDENTIFY_ON_LOGIN``), which is what lets
  Outlit see the user as discovered and signed up without any code.
- ``request_finished``: a bounded flush when ``FLUSH_ON_REQUEST_FINISHED`` is on (serverless);
  connected only then.

None of them ever raises into the request or the login: failures are logged.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.core.signals import request_finished
from django.test.signals import setting_changed

from outlit import BoundTracker
from outlit._tracker import login_identity, user_identity

from . import conf
from .client import get_client, peek_client, reset_client
from .identity import default_identity

if TYPE_CHECKING:
    from django.http import HttpRequest
from outlit._log import get_logger

logger = get_logger("outlit.django")

_FLUSH_UID = "outlit_django.flush"


def reset_on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == conf.SETTING_NAME:
        connect_request_finished()
        try:
            reset_client()
        except Exception:
            logger.exception("outlit: could not shut down the client of the previous settings")


def identify_on_login(
    sender: Any, *, request: HttpRequest | None = None, user: Any = None, **kwargs: Any
) -> None:
    """Send ``identify`` with the user's ``user_id``/``email``, plus what the identity function
    adds for this request (typically ``customer_id``/``customer_domain``)."""
    try:
        outlit_settings = conf.get_settings()
        if not outlit_settings.identify_on_login:
            return
        identity = user_identity(user)
        function = outlit_settings.identity
        if function is not None and function is not default_identity and request is not None:
            identity.update(_extra_identity(function, request))
        if identity.get("email") or identity.get("user_id"):
            get_client().identify(**identity)
    except Exception:
        # A login must succeed even when analytics cannot record it.
        logger.exception("outlit: could not send identify for the login of %r", user)


def refresh_tracker_on_login(
    sender: Any, *, request: HttpRequest | None = None, **kwargs: Any
) -> None:
    """``request.outlit`` after a login in the middle of its request is the new user's, even
    when it looked its identity up before (an async view's is looked up before the view
    runs). Looked up again right here if it was: receivers run in sync code, also for
    ``alogin()``, where an identity function may query the database."""
    _refresh_tracker(request, look_up=True)


def refresh_tracker_on_logout(
    sender: Any, *, request: HttpRequest | None = None, **kwargs: Any
) -> None:
    """The same after a logout; looked up on next use, since ``request.user`` becomes the
    anonymous user only after this signal."""
    _refresh_tracker(request, look_up=False)


def _refresh_tracker(request: HttpRequest | None, look_up: bool) -> None:
    tracker = request.__dict__.get("outlit") if request is not None else None
    if not isinstance(tracker, BoundTracker) or request is None:
        return
    try:
        from .middleware import request_tracker

        looked_up = tracker._ids is not None
        fresh = request_tracker(request)
        # In place, so that a tracker the view already holds follows too. The source first:
        # a lookup that finds no identity yet then finds this source.
        tracker._source = fresh._source
        tracker._ids = fresh._ids
        if look_up and looked_up and tracker._ids is None:
            tracker._resolve()  # logs what the identity function raises; never raises
    except Exception:
        # A login or logout must succeed even when analytics cannot follow it.
        logger.exception("outlit: could not update request.outlit after a login or logout")


def _extra_identity(function: conf.IdentityFunction, request: HttpRequest) -> dict[str, Any]:
    # Checked as request.outlit checks it; a failing function costs only its own fields.
    return login_identity(functools.partial(function, request))


def flush_on_request_finished(sender: Any, **kwargs: Any) -> None:
    """With ``FLUSH_ON_REQUEST_FINISHED``, deliver what the request queued before the worker
    process may be frozen (serverless), waiting at most ``REQUEST_FLUSH_TIMEOUT``."""
    try:
        outlit_settings = conf.get_settings()
        if not outlit_settings.flush_on_request_finished:
            return
        client = peek_client()
        if client is None or client.closed or client.queue_size == 0:
            return
        client.flush(outlit_settings.request_flush_timeout)
    except Exception:
        logger.exception("outlit: the end-of-request flush failed")


def connect() -> None:
    """Connect every receiver once (dispatch_uid makes a second call a no-op)."""
    setting_changed.connect(reset_on_setting_changed, dispatch_uid="outlit_django.settings")
    user_logged_in.connect(identify_on_login, dispatch_uid="outlit_django.login")
    user_logged_in.connect(refresh_tracker_on_login, dispatch_uid="outlit_django.login_tracker")
    user_logged_out.connect(refresh_tracker_on_logout, dispatch_uid="outlit_django.logout")
    connect_request_finished()


def connect_request_finished() -> None:
    """Connect the ``request_finished`` receiver only while ``FLUSH_ON_REQUEST_FINISHED`` is on:
    a connected receiver costs every request something, even one that returns at once."""
    try:
        wanted = conf.user_settings().get("FLUSH_ON_REQUEST_FINISHED") is True
    except Exception:
        wanted = True  # a broken setting: the receiver reads it and logs the error itself
    if wanted:
        request_finished.connect(flush_on_request_finished, dispatch_uid=_FLUSH_UID)
    else:
        request_finished.disconnect(dispatch_uid=_FLUSH_UID)
