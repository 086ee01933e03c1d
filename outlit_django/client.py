"""The process-wide client, created from ``settings.OUTLIT`` on first use.

Created lazily so that importing the app, ``gunicorn --preload`` and management commands that
never track create no client and start no thread. Replaced (the old one shut down) when
``settings.OUTLIT`` changes, which is what keeps ``override_settings`` correct in tests.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, cast

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from outlit import OptionError, Outlit
from outlit._options import ENV_API_HOST, ENV_PUBLIC_KEY, resolve_options

from . import conf

if TYPE_CHECKING:
    from outlit import FlushResult, Options
from outlit._log import get_logger

logger = get_logger("outlit.django")

_lock = threading.Lock()


class LazyClient:
    """Stands for the :class:`~outlit.Outlit` client built from settings; builds it when an
    attribute is first used. ``isinstance(outlit, outlit.Outlit)`` holds."""

    __slots__ = ("_client",)
    _client: Outlit | None

    def __init__(self) -> None:
        object.__setattr__(self, "_client", None)

    def __getattr__(self, name: str) -> Any:
        # Only called for names the proxy lacks: the client's public names have properties
        # below, because this runs only after a failed lookup has made and discarded an
        # AttributeError (2,900 instructions more per outlit.track call, in process).
        return getattr(get_client(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(get_client(), name, value)

    def __delattr__(self, name: str) -> None:
        # What mock.patch.object(outlit, "track") does on exit, after setting the attribute.
        delattr(get_client(), name)

    def __dir__(self) -> list[str]:
        return dir(Outlit)

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # lets isinstance() see an Outlit
        return Outlit

    def __repr__(self) -> str:
        client = self._client
        if client is None:
            return "<outlit_django.outlit: created from settings.OUTLIT on first use>"
        return repr(client)


def _forwarding(name: str) -> property:
    def get(proxy: LazyClient) -> Any:
        client = proxy._client
        if client is None:
            client = get_client()
        return getattr(client, name)

    get.__name__ = name
    return property(get, doc=f"The client's ``{name}``.")


# The client's public methods and attributes, found by the proxy's class like any property.
# Assignments still go through __setattr__ (it takes precedence over these properties).
for _name in (
    "track", "identify", "user", "customer", "flush", "aflush", "shutdown", "ashutdown",
    "close", "aclose", "closed", "bind", "queue_size", "stats", "options",
):  # fmt: skip
    setattr(LazyClient, _name, _forwarding(_name))
del _name

_proxy = LazyClient()

#: ``from outlit_django import outlit``: the process-wide client, typed as what it stands for.
outlit = cast(Outlit, _proxy)


def get_client() -> Outlit:
    """The process-wide client, created now if it does not exist yet."""
    client: Outlit | None = _proxy._client
    if client is None:
        with _lock:
            client = _proxy._client
            if client is None:
                client = build_client()
                object.__setattr__(_proxy, "_client", client)
    return client


def peek_client() -> Outlit | None:
    """The process-wide client if it was created, without creating it."""
    client: Outlit | None = _proxy._client
    return client


def reset_client(timeout: float | None = None) -> FlushResult | None:
    """Forget the settings read so far and shut the current client down (flushing it).

    The next use builds a new client from the settings as they are then.
    """
    with _lock:
        conf.clear_cache()
        old: Outlit | None = _proxy._client
        object.__setattr__(_proxy, "_client", None)
    if old is None:
        return None
    return old.shutdown(timeout)


def resolved_options(outlit_settings: conf.OutlitSettings | None = None) -> Options:
    """The options a client built now would have, without building one.

    Raises ``ImproperlyConfigured`` for settings the client would refuse. The middleware calls
    it when the server loads it, so that those fail at start-up rather than on a request.
    """
    resolved = outlit_settings or conf.get_settings()
    kwargs = _client_kwargs(resolved)
    try:
        return resolve_options(**kwargs)
    except OptionError as exc:
        raise _naming_the_setting(exc, resolved) from exc


def _client_kwargs(resolved: conf.OutlitSettings) -> dict[str, Any]:
    kwargs = dict(resolved.client_kwargs)
    key = kwargs.get("public_key")
    if isinstance(key, str) and not key.strip():
        kwargs["public_key"] = None  # blank: the environment's key, as the checks read it
    if kwargs.get("enabled", True) is True and resolved.public_key_missing:
        kwargs["enabled"] = False
        kwargs["public_key"] = None
    return kwargs


def build_client(
    outlit_settings: conf.OutlitSettings | None = None, *, lend_transport: bool = False
) -> Outlit:
    """A new client from ``settings.OUTLIT``.

    With ``lend_transport``, a ``TRANSPORT`` object from the settings (which the process-wide
    client uses too) is lent: shutting this client down does not close it.

    Without a public key (in the setting or the environment) the client is created disabled,
    with one log line, rather than failing every request: ``manage.py check`` reports the
    missing key (as an error unless ``DEBUG``). Any other bad value raises
    ``ImproperlyConfigured`` naming the key.
    """
    resolved = outlit_settings or conf.get_settings()
    kwargs = _client_kwargs(resolved)
    if lend_transport and kwargs.get("transport") is not None:
        kwargs["transport"] = _LentTransport(kwargs["transport"])
    if kwargs["enabled"] is False and resolved.client_kwargs.get("enabled", True) is True:
        logger.log(
            logging.WARNING if settings.DEBUG else logging.ERROR,
            "outlit: no public key (settings.%s['PUBLIC_KEY'] or %s): tracking calls are "
            "validated but nothing is sent",
            conf.SETTING_NAME,
            ENV_PUBLIC_KEY,
        )
    try:
        return Outlit(**kwargs)
    except OptionError as exc:
        raise _naming_the_setting(exc, resolved) from exc


class _LentTransport:
    """Sends through another client's transport; closing it leaves that transport open."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport

    def send(self, request: Any) -> Any:
        return self._transport.send(request)

    def close(self) -> None:
        pass


def _naming_the_setting(exc: OptionError, resolved: conf.OutlitSettings) -> ImproperlyConfigured:
    """The client's complaint about an option, naming where the value came from: the key of
    ``settings.OUTLIT`` (``MAX_BATCH_SIZE``, not the client's ``max_batch_size``) or the
    environment variable the key and host fall back to."""
    option, _, complaint = str(exc).partition(" ")
    key = option.upper()
    if key not in conf.DEFAULTS or not complaint:
        return ImproperlyConfigured(f"settings.{conf.SETTING_NAME}: {exc}")
    env = {"PUBLIC_KEY": ENV_PUBLIC_KEY, "API_HOST": ENV_API_HOST}.get(key)
    from_env = (
        resolved.public_key_from_environment
        if key == "PUBLIC_KEY"
        else resolved.values.get(key) is None
    )
    if env is not None and from_env:
        return ImproperlyConfigured(f"The {env} environment variable {complaint}")
    return ImproperlyConfigured(f"settings.{conf.SETTING_NAME}['{key}'] {complaint}")
