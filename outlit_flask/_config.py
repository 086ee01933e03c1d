"""The extension's ``app.config`` keys: every client option as ``OUTLIT_<OPTION>``, plus the
four that belong to Flask (identity, login, teardown flush and its bound), read once when
``init_app`` runs."""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from outlit import (
    DEFAULT_FLUSH_INTERVAL,
    DEFAULT_MAX_BATCH_SIZE,
    DEFAULT_MAX_QUEUE_SIZE,
    DEFAULT_MAX_REQUESTS_PER_SECOND,
    DEFAULT_SHUTDOWN_TIMEOUT,
    DEFAULT_TIMEOUT,
    OptionError,
)
from outlit._log import get_logger
from outlit._options import options_from_config

logger = get_logger("outlit")

PREFIX = "OUTLIT_"

#: Defaults of the client options. ``None`` for the key and host lets the client fall back to
#: the OUTLIT_PUBLIC_KEY and OUTLIT_API_HOST environment variables.
CLIENT_DEFAULTS: dict[str, Any] = {
    "OUTLIT_PUBLIC_KEY": None,
    "OUTLIT_API_HOST": None,
    "OUTLIT_FLUSH_INTERVAL": DEFAULT_FLUSH_INTERVAL,
    "OUTLIT_MAX_BATCH_SIZE": DEFAULT_MAX_BATCH_SIZE,
    "OUTLIT_TIMEOUT": DEFAULT_TIMEOUT,
    "OUTLIT_MAX_QUEUE_SIZE": DEFAULT_MAX_QUEUE_SIZE,
    "OUTLIT_ENABLED": True,
    "OUTLIT_SHUTDOWN_TIMEOUT": DEFAULT_SHUTDOWN_TIMEOUT,
    "OUTLIT_MAX_REQUESTS_PER_SECOND": DEFAULT_MAX_REQUESTS_PER_SECOND,
    "OUTLIT_RETRY": None,
    "OUTLIT_TRANSPORT": None,
}

#: The longest a teardown flush holds up the response. The same bound as the per-request flush
#: of the Django and FastAPI adapters; the exit-time ``OUTLIT_SHUTDOWN_TIMEOUT`` is longer, since
#: no client waits on that one.
DEFAULT_TEARDOWN_FLUSH_TIMEOUT = 2.0

#: The Flask side's own settings.
FLASK_DEFAULTS: dict[str, Any] = {
    "OUTLIT_IDENTIFY_USER": True,
    "OUTLIT_IDENTIFY_ON_LOGIN": True,
    "OUTLIT_FLUSH_ON_TEARDOWN": False,
    "OUTLIT_TEARDOWN_FLUSH_TIMEOUT": DEFAULT_TEARDOWN_FLUSH_TIMEOUT,
}

CONFIG_DEFAULTS: dict[str, Any] = {**CLIENT_DEFAULTS, **FLASK_DEFAULTS}


@dataclass(frozen=True)
class FlaskSettings:
    """The adapter's settings for one app."""

    identify_user: bool
    identify_on_login: bool
    flush_on_teardown: bool
    teardown_flush_timeout: float


def read_config(config: Mapping[str, Any]) -> tuple[dict[str, Any], FlaskSettings]:
    """The client's keyword arguments and the Flask settings from an app's config.

    Raises :class:`~outlit.OptionError`, naming the key, for a switch that is not a bool or a
    timeout that is not a number of seconds > 0; an unknown ``OUTLIT_`` key is logged with the
    nearest known one, as typos otherwise go unnoticed.
    """
    kwargs, unknown = options_from_config(config, prefix=PREFIX)
    for key in unknown:
        if key in FLASK_DEFAULTS:
            continue
        close = difflib.get_close_matches(key, list(CONFIG_DEFAULTS), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        logger.warning("outlit: ignoring unknown config key %s%s", key, hint)
    settings = FlaskSettings(
        identify_user=_switch(config, "OUTLIT_IDENTIFY_USER"),
        identify_on_login=_switch(config, "OUTLIT_IDENTIFY_ON_LOGIN"),
        flush_on_teardown=_switch(config, "OUTLIT_FLUSH_ON_TEARDOWN"),
        teardown_flush_timeout=_seconds(config, "OUTLIT_TEARDOWN_FLUSH_TIMEOUT"),
    )
    return kwargs, settings


def _switch(config: Mapping[str, Any], key: str) -> bool:
    value = config.get(key, FLASK_DEFAULTS[key])
    if not isinstance(value, bool):
        raise OptionError(f"{key} must be True or False, got {value!r}")
    return value


def _seconds(config: Mapping[str, Any], key: str) -> float:
    value = config.get(key, FLASK_DEFAULTS[key])
    # bool is an int, and NaN compares false both ways: both are refused here.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise OptionError(f"{key} must be a finite number of seconds > 0, got {value!r}")
    return float(value)
