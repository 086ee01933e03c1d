"""``settings.OUTLIT`` merged over documented defaults, read once and read again whenever the
setting changes (``override_settings`` in tests sends ``setting_changed``, see ``receivers``)."""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from outlit import (
    DEFAULT_FLUSH_INTERVAL,
    DEFAULT_MAX_BATCH_SIZE,
    DEFAULT_MAX_QUEUE_SIZE,
    DEFAULT_MAX_REQUESTS_PER_SECOND,
    DEFAULT_SHUTDOWN_TIMEOUT,
    DEFAULT_TIMEOUT,
)
from outlit._options import ENV_PUBLIC_KEY, options_from_config
from outlit._tracker import is_async_callable

from .identity import through_reference

if TYPE_CHECKING:
    from django.http import HttpRequest

#: The name of the Django setting.
SETTING_NAME = "OUTLIT"

#: How long the ``request_finished`` flush may hold a worker, in seconds.
DEFAULT_REQUEST_FLUSH_TIMEOUT = 2.0

#: Every key ``settings.OUTLIT`` understands, with its default.
DEFAULTS: dict[str, Any] = {
    # The client's options (see ``outlit.Outlit``), upper-cased.
    "PUBLIC_KEY": None,  # None: the OUTLIT_PUBLIC_KEY environment variable
    "API_HOST": None,  # None: OUTLIT_API_HOST, else https://app.outlit.ai
    "FLUSH_INTERVAL": DEFAULT_FLUSH_INTERVAL,
    "MAX_BATCH_SIZE": DEFAULT_MAX_BATCH_SIZE,
    "TIMEOUT": DEFAULT_TIMEOUT,
    "MAX_QUEUE_SIZE": DEFAULT_MAX_QUEUE_SIZE,
    "ENABLED": True,
    "SHUTDOWN_TIMEOUT": DEFAULT_SHUTDOWN_TIMEOUT,
    "MAX_REQUESTS_PER_SECOND": DEFAULT_MAX_REQUESTS_PER_SECOND,
    "RETRY": None,  # None: outlit.RetryPolicy()
    "TRANSPORT": None,  # None: HTTP; else a transport, or a dotted path to a factory of one
    # The Django integration's own options.
    "IDENTIFY_USER": True,  # True, False, or a function(request) -> dict (or its dotted path)
    "IDENTIFY_ON_LOGIN": True,
    "FLUSH_ON_REQUEST_FINISHED": False,
    "REQUEST_FLUSH_TIMEOUT": DEFAULT_REQUEST_FLUSH_TIMEOUT,
}

INTEGRATION_KEYS = (
    "IDENTIFY_USER",
    "IDENTIFY_ON_LOGIN",
    "FLUSH_ON_REQUEST_FINISHED",
    "REQUEST_FLUSH_TIMEOUT",
)

IdentityFunction = Callable[["HttpRequest"], Mapping[str, Any] | None]


class OutlitSettings:
    """The resolved ``settings.OUTLIT``: client keyword arguments and the integration's options."""

    __slots__ = (
        "client_kwargs",
        "flush_on_request_finished",
        "identify_on_login",
        "identity",
        "lookup",
        "request_flush_timeout",
        "unknown_keys",
        "values",
    )

    def __init__(self, user_values: Mapping[str, Any]) -> None:
        values = {**DEFAULTS, **user_values}
        kwargs, unknown = options_from_config(values)
        if isinstance(kwargs.get("transport"), str):
            kwargs["transport"] = _load_transport(kwargs["transport"])
        self.values = values
        self.client_kwargs: dict[str, Any] = kwargs
        self.unknown_keys = tuple(key for key in unknown if key not in INTEGRATION_KEYS)
        self.identity: IdentityFunction | None = load_identity_function(values["IDENTIFY_USER"])
        # The identity function as request.outlit calls it, through a weak reference (None
        # when identity is None).
        self.lookup: Any = None if self.identity is None else through_reference(self.identity)
        self.identify_on_login = values["IDENTIFY_ON_LOGIN"] is True
        self.flush_on_request_finished = values["FLUSH_ON_REQUEST_FINISHED"] is True
        timeout = values["REQUEST_FLUSH_TIMEOUT"]
        self.request_flush_timeout = (
            float(timeout)
            if isinstance(timeout, (int, float))
            and not isinstance(timeout, bool)
            and 0 < timeout < math.inf
            else DEFAULT_REQUEST_FLUSH_TIMEOUT
        )

    @property
    def public_key_from_environment(self) -> bool:
        """The setting gives no key (None or blank): ``OUTLIT_PUBLIC_KEY`` applies."""
        key = self.client_kwargs.get("public_key")
        return key is None or (isinstance(key, str) and not key.strip())

    @property
    def public_key_missing(self) -> bool:
        """No key in the setting nor in the environment (blank counts as missing)."""
        key = self.client_kwargs.get("public_key")
        if isinstance(key, str) and key.strip():
            return False
        if key not in (None, "") and not isinstance(key, str):
            return False  # a wrong type is not "missing": the client reports it
        return not (os.environ.get(ENV_PUBLIC_KEY) or "").strip()


def user_settings() -> Mapping[str, Any]:
    """``settings.OUTLIT`` as given (``{}`` when absent)."""
    value = getattr(settings, SETTING_NAME, None)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ImproperlyConfigured(
            f"settings.{SETTING_NAME} must be a dict such as "
            f'{{"PUBLIC_KEY": "pk_..."}}, got {type(value).__name__}'
        )
    return value


@functools.cache
def get_settings() -> OutlitSettings:
    """The resolved settings, cached until ``settings.OUTLIT`` changes."""
    return OutlitSettings(user_settings())


def clear_cache() -> None:
    get_settings.cache_clear()


def load_identity_function(value: Any) -> IdentityFunction | None:
    """``IDENTIFY_USER``: True gives :func:`outlit_django.default_identity`, False gives None,
    a dotted path or a callable gives that function."""
    if value is True:
        from outlit_django.identity import default_identity

        return default_identity
    if value is False or value is None:
        return None
    if isinstance(value, str):
        try:
            value = import_string(value)
        except Exception as exc:  # ImportError, or whatever the module raises as it loads
            raise ImproperlyConfigured(
                f"settings.{SETTING_NAME}['IDENTIFY_USER'] = {value!r} cannot be imported: "
                f"{_describe(exc)}"
            ) from exc
    if not callable(value):
        raise ImproperlyConfigured(
            f"settings.{SETTING_NAME}['IDENTIFY_USER'] must be True, False, or a function "
            f"taking the request (or its dotted path), got {value!r}"
        )
    if is_async_callable(value):
        raise ImproperlyConfigured(
            f"settings.{SETTING_NAME}['IDENTIFY_USER'] = {value!r} is async: request.outlit "
            "calls it synchronously (in async views too), so give a plain function"
        )
    function: IdentityFunction = value
    return function


def _describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, ImportError) else f"{type(exc).__name__}: {exc}"


def _load_transport(path: str) -> Any:
    try:
        factory = import_string(path)
    except Exception as exc:  # ImportError, or whatever the module raises as it loads
        raise ImproperlyConfigured(
            f"settings.{SETTING_NAME}['TRANSPORT'] = {path!r} cannot be imported: {_describe(exc)}"
        ) from exc
    if not callable(factory):
        return factory
    try:
        return factory()
    except Exception as exc:
        raise ImproperlyConfigured(
            f"settings.{SETTING_NAME}['TRANSPORT'] = {path!r} raised when called: {_describe(exc)}"
        ) from exc
