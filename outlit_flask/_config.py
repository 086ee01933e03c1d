"""The extension's ``app.config`` keys: every client option as ``OUTLIT_<OPTION>``, plus the
three that belong to Flask (identity, login, teardown), read once when ``init_app`` runs."""

from __future__ import annotations

import difflib
import logging
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
from outlit._options import options_from_config

logger = logging.getLogger("outlit")

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

#: The Flask side's own switches.
FLASK_DEFAULTS: dict[str, Any] = {
    "OUTLIT_IDENTIFY_USER": True,
    "OUTLIT_IDENTIFY_ON_LOGIN": True,
    "OUTLIT_FLUSH_ON_TEARDOWN": False,
}

CONFIG_DEFAULTS: dict[str, Any] = {**CLIENT_DEFAULTS, **FLASK_DEFAULTS}


@dataclass(frozen=True)
class FlaskSettings:
    """The adapter's switches for one app."""

    identify_user: bool
    identify_on_login: bool
    flush_on_teardown: bool


def read_config(config: Mapping[str, Any]) -> tuple[dict[str, Any], FlaskSettings]:
    """The client's keyword arguments and the Flask switches from an app's config.

    Raises :class:`~outlit.OptionError` for a switch that is not a bool; an unknown ``OUTLIT_``
    key is logged with the nearest known one, as typos otherwise go unnoticed.
    """
    kwargs, unknown = options_from_config(config, prefix=PREFIX)
    for key in unknown:
        if key in FLASK_DEFAULTS:
            continue
        close = difflib.get_close_matches(key, list(CONFIG_DEFAULTS), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        logger.warning("outlit: ignoring unknown config key %s%s", key, hint)
    switches: dict[str, bool] = {}
    for key in FLASK_DEFAULTS:
        value = config.get(key, FLASK_DEFAULTS[key])
        if not isinstance(value, bool):
            raise OptionError(f"{key} must be True or False, got {value!r}")
        switches[key[len(PREFIX) :].lower()] = value
    return kwargs, FlaskSettings(**switches)
