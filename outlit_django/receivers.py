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

from django.contrib.auth.signals import user_logged_in
from django.core.signals import request_finished
from django.test.signals import setting_changed

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
