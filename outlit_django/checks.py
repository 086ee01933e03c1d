"""System checks run by ``manage.py check`` (and before ``runserver`` and ``migrate``).

    outlit_django.E001 / W001  no public key (an error unless DEBUG; none when ENABLED is False)
    outlit_django.E002         the public key is not of the pk_ form, or is a placeholder (pk_...)
    outlit_django.E003         API_HOST is not an http(s) URL
    outlit_django.W002         API_HOST is plain http to a host that is not this machine
    outlit_django.E004         an option has a wrong type or is out of range
    outlit_django.E005         settings.OUTLIT is not a dict
    outlit_django.E006         IDENTIFY_USER or TRANSPORT cannot be used
    outlit_django.W003         an unknown key in settings.OUTLIT (with the closest known key)
    outlit_django.W004         OutlitMiddleware comes before AuthenticationMiddleware
    outlit_django.W005         OutlitMiddleware without AuthenticationMiddleware, and IDENTIFY_USER
                               left to look up request.user

Each check reads the settings afresh and never raises: a broken configuration is reported,
not thrown.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from outlit import DEFAULT_API_HOST, OptionError
from outlit._doctor import is_this_machine
from outlit._options import (
    ENV_API_HOST,
    ENV_PUBLIC_KEY,
    looks_like_placeholder,
    normalize_api_host,
    options_from_config,
    resolve_options,
)

from . import conf

TAG = "outlit"

MIDDLEWARE_PATH = "outlit_django.middleware.OutlitMiddleware"
AUTH_MIDDLEWARE_PATH = "django.contrib.auth.middleware.AuthenticationMiddleware"

# How the hints name a default that is not written as itself in conf.DEFAULTS.
_DEFAULT_SHOWN = {"RETRY": "outlit.RetryPolicy()"}

_TRANSPORT_HINT = (
    "Give a transport object or the dotted path of a class or function that returns one, or "
    "remove the key to send over HTTP."
)

# Keys whose values get a check of their own below rather than the generic range check.
_OWN_CHECKS = frozenset({"public_key", "api_host", "transport"})


def _where(key: str) -> str:
    return f"settings.{conf.SETTING_NAME}[{key!r}]"


def check_settings(app_configs: Sequence[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """Every check of ``settings.OUTLIT``, in the order a person would fix them."""
    try:
        user_values = conf.user_settings()
    except ImproperlyConfigured as exc:
        return [
            Error(
                str(exc),
                hint=f'Use a dict, for example {conf.SETTING_NAME} = {{"PUBLIC_KEY": "pk_..."}}.',
                id="outlit_django.E005",
            )
        ]
    values = {**conf.DEFAULTS, **user_values}
    messages: list[CheckMessage] = []
    messages += _check_public_key(values)
    messages += _check_api_host(values)
    messages += _check_option_values(values)
    messages += _check_integration_values(values)
    if not any(isinstance(m, Error) for m in messages):
        messages += _check_as_the_server_loads()
    messages += _check_unknown_keys(user_values)
    return messages


def _check_as_the_server_loads() -> list[CheckMessage]:
    """What the middleware refuses at start-up that the checks above let through (a key the
    client refuses for its characters, a TRANSPORT that is not a transport or whose factory
    raises): the checks run the same resolution, so that no setting passes ``manage.py
    check`` and then stops the server."""
    from .client import resolved_options

    try:
        resolved_options(conf.get_settings())
    except ImproperlyConfigured as exc:
        text = str(exc)
    except Exception as exc:  # a TRANSPORT factory's own error, say: reported, never raised
        text = f"{_where('TRANSPORT')}: {type(exc).__name__}: {exc}"
    else:
        return []
    if "PUBLIC_KEY" in text:
        hint, check_id = (
            "Copy the public key (it starts with 'pk_') from Outlit's settings; a key pasted "
            "from a page may carry invisible characters.",
            "outlit_django.E002",
        )
    elif "TRANSPORT" in text:
        hint, check_id = (
            _TRANSPORT_HINT,
            "outlit_django.E006",
        )
    else:
        hint, check_id = (
            "Fix the value, or remove the key to use the default.",
            "outlit_django.E004",
        )
    return [Error(f"{text} (the server would refuse to start).", hint=hint, id=check_id)]


def _check_public_key(values: dict[str, Any]) -> list[CheckMessage]:
    key = values["PUBLIC_KEY"]
    if key is None or (isinstance(key, str) and not key.strip()):
        key = os.environ.get(ENV_PUBLIC_KEY) or None
        source = f"the {ENV_PUBLIC_KEY} environment variable"
    else:
        source = _where("PUBLIC_KEY")
    if key is None:
        if values["ENABLED"] is False:
            return []
        hint = (
            f"Set {conf.SETTING_NAME}['PUBLIC_KEY'] to your public key (from Outlit's settings) or "
            f'the {ENV_PUBLIC_KEY} environment variable; "ENABLED": False turns tracking off. '
            "Until then tracking calls are accepted and nothing is sent. (Django's test runner "
            "runs the checks with DEBUG False: give the test settings a key such as 'pk_test', "
            'or "ENABLED": False.)'
        )
        text = "Outlit has no public key."
        if settings.DEBUG:
            return [Warning(text, hint=hint, id="outlit_django.W001")]
        return [Error(text, hint=hint, id="outlit_django.E001")]
    if (
        values["ENABLED"] is not False
        and isinstance(key, str)
        and key.strip().startswith("pk_")
        and looks_like_placeholder(key.strip())
    ):
        return [
            Error(
                f"The Outlit public key from {source} looks like a placeholder: {key!r}.",
                hint="Copy the public key (it starts with 'pk_') from Outlit's settings. The "
                "service, and the local collector, refuse this one.",
                id="outlit_django.E002",
            )
        ]
    if (
        not isinstance(key, str)
        or not key.strip().startswith("pk_")
        or any(c in key for c in "/?#")
    ):
        return [
            Error(
                f"The Outlit public key from {source} is not of the form 'pk_...'.",
                hint="Copy the public key (it starts with 'pk_') from Outlit's settings; "
                "it is the key that is safe to ship in browser pages, not a secret key.",
                id="outlit_django.E002",
            )
        ]
    return []


def _check_api_host(values: dict[str, Any]) -> list[CheckMessage]:
    host = values["API_HOST"]
    source = _where("API_HOST")
    if host is None:
        host = os.environ.get(ENV_API_HOST) or None
        source = f"the {ENV_API_HOST} environment variable"
    if host is None:
        return []  # the default, https://app.outlit.ai
    try:
        normalized = normalize_api_host(host)
    except OptionError as exc:
        return [
            Error(
                f"The Outlit API host from {source} is not usable: {exc}.",
                hint="Leave it out to send to https://app.outlit.ai, or give a URL "
                "such as 'http://127.0.0.1:8787' for the local collector (outlit dev).",
                id="outlit_django.E003",
            )
        ]
    parts = urlsplit(normalized)
    if parts.scheme == "http" and not is_this_machine(parts.hostname or ""):
        return [
            Warning(
                f"The Outlit API host {normalized!r} (from {source}) is plain http to a host "
                "that is not this machine: events and user emails would cross the network "
                "unencrypted.",
                hint="Use https:// for any host other than localhost.",
                id="outlit_django.W002",
            )
        ]
    return []


def _check_option_values(values: dict[str, Any]) -> list[CheckMessage]:
    """Run each client option through the client's own validation, one key at a time, so each
    bad key gets its own message."""
    kwargs, _unknown = options_from_config(conf.DEFAULTS)
    baseline = {**kwargs, "public_key": "pk_check", "api_host": DEFAULT_API_HOST}
    messages: list[CheckMessage] = []
    for name in kwargs:
        if name in _OWN_CHECKS:
            continue
        key = name.upper()
        if values[key] is conf.DEFAULTS[key]:
            continue
        try:
            resolve_options(**{**baseline, name: values[key]})
        except OptionError as exc:
            default = _DEFAULT_SHOWN.get(key, repr(conf.DEFAULTS[key]))
            messages.append(
                Error(
                    f"{_where(key)} is not valid: {exc}.",
                    hint=f"Fix the value, or remove the key to use the default ({default}).",
                    id="outlit_django.E004",
                )
            )
    transport = values["TRANSPORT"]
    if isinstance(transport, str):
        try:
            import_string(transport)
        except Exception as exc:  # ImportError, or whatever the module raises as it loads
            described = exc if isinstance(exc, ImportError) else f"{type(exc).__name__}: {exc}"
            messages.append(
                Error(
                    f"{_where('TRANSPORT')} = {transport!r} cannot be imported: {described}.",
                    hint=_TRANSPORT_HINT,
                    id="outlit_django.E006",
                )
            )
    return messages


def integration_errors() -> list[CheckMessage]:
    """What the checks find wrong with the integration's own keys of the current setting
    (the middleware refuses to load with any)."""
    return _check_integration_values({**conf.DEFAULTS, **conf.user_settings()})


def _check_integration_values(values: dict[str, Any]) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    try:
        conf.load_identity_function(values["IDENTIFY_USER"])
    except ImproperlyConfigured as exc:
        messages.append(
            Error(
                str(exc),
                hint="Use True (the authenticated user's user_id and email), False, or the "
                "dotted path of a function(request) -> dict.",
                id="outlit_django.E006",
            )
        )
    for key in ("IDENTIFY_ON_LOGIN", "FLUSH_ON_REQUEST_FINISHED"):
        if not isinstance(values[key], bool):
            messages.append(
                Error(
                    f"{_where(key)} must be True or False, got {values[key]!r}.",
                    hint=f"Remove the key to use the default ({conf.DEFAULTS[key]!r}).",
                    id="outlit_django.E004",
                )
            )
    timeout = values["REQUEST_FLUSH_TIMEOUT"]
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not 0 < timeout < float("inf")
    ):
        messages.append(
            Error(
                f"{_where('REQUEST_FLUSH_TIMEOUT')} must be a number of seconds > 0, "
                f"got {timeout!r}.",
                hint=f"Remove the key to use the default ({conf.DEFAULT_REQUEST_FLUSH_TIMEOUT}).",
                id="outlit_django.E004",
            )
        )
    return messages


def _check_unknown_keys(user_values: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for key in user_values:
        if key in conf.DEFAULTS:
            continue
        candidates = difflib.get_close_matches(str(key).upper(), list(conf.DEFAULTS), n=1)
        hint = (
            f"Did you mean {candidates[0]!r}?"
            if candidates
            else "Known keys: " + ", ".join(sorted(conf.DEFAULTS)) + "."
        )
        messages.append(
            Warning(
                f"{_where(str(key))} is not an Outlit setting and is ignored.",
                hint=hint,
                id="outlit_django.W003",
            )
        )
    return messages


def check_middleware(app_configs: Sequence[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """``OutlitMiddleware`` must come after ``AuthenticationMiddleware``, which sets
    ``request.user`` (async views need the user before they run). Without it, the default
    ``IDENTIFY_USER`` has no user to find."""
    middleware = list(getattr(settings, "MIDDLEWARE", None) or [])
    if MIDDLEWARE_PATH not in middleware:
        return []
    if AUTH_MIDDLEWARE_PATH in middleware:
        if middleware.index(MIDDLEWARE_PATH) < middleware.index(AUTH_MIDDLEWARE_PATH):
            return [
                Warning(
                    f"{MIDDLEWARE_PATH} comes before {AUTH_MIDDLEWARE_PATH} in MIDDLEWARE.",
                    hint="Move OutlitMiddleware after AuthenticationMiddleware, as the "
                    "documentation places it: a middleware between the two that tracks would "
                    "look the identity up before request.user exists, and the request's "
                    "tracker keeps that answer (no user) for the view too.",
                    id="outlit_django.W004",
                )
            ]
        return []
    if _identifies_request_user() and not _has_authentication_subclass(middleware):
        return [
            Warning(
                f"{MIDDLEWARE_PATH} is in MIDDLEWARE but {AUTH_MIDDLEWARE_PATH} is not, while "
                f"{_where('IDENTIFY_USER')} is left to look up request.user: unless something "
                "else sets request.user, request.outlit never has a user to fill in.",
                hint=f"Add {AUTH_MIDDLEWARE_PATH} before OutlitMiddleware, or set "
                f"{_where('IDENTIFY_USER')} to a function(request) -> dict (or its dotted "
                "path) or to False. If your own code sets request.user, add "
                "'outlit_django.W005' to SILENCED_SYSTEM_CHECKS.",
                id="outlit_django.W005",
            )
        ]
    return []


def _identifies_request_user() -> bool:
    """Whether ``IDENTIFY_USER`` is the default, the lookup of ``request.user``."""
    from .identity import default_identity

    try:
        value = {**conf.DEFAULTS, **conf.user_settings()}["IDENTIFY_USER"]
        function = conf.load_identity_function(value)
    except ImproperlyConfigured:
        return False  # E005 or E006 says what is wrong with the setting
    return function is default_identity


def _has_authentication_subclass(middleware: list[str]) -> bool:
    """A subclass of ``AuthenticationMiddleware`` sets ``request.user`` too (Django's admin
    checks for one the same way)."""
    try:
        from django.contrib.auth.middleware import AuthenticationMiddleware
    except Exception:  # it imports only with django.contrib.auth installed; without it, no subclass
        return False
    for path in middleware:
        try:
            found = import_string(path)
        except Exception:
            continue  # Django reports a path it cannot import when it loads the middleware
        if isinstance(found, type) and issubclass(found, AuthenticationMiddleware):
            return True
    return False


def register_checks() -> None:
    register(check_settings, TAG)
    register(check_middleware, TAG)
