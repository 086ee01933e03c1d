"""The exceptions the client raises into caller code, all of them programmer errors.

    OutlitError
    ├── OptionError(ValueError)          a constructor option is missing or out of range
    ├── InvalidEventError(ValueError)    a call lacks the identity it needs, or a field has a bad type
    └── ClientClosedError(RuntimeError)  a call after shutdown()

Delivery problems (network, HTTP errors, a full queue) never raise: they are logged on the
``outlit`` logger, counted in :attr:`Outlit.stats` and sent as :mod:`outlit.signals`.
"""

from __future__ import annotations


class OutlitError(Exception):
    """Base class of every exception raised by the Outlit SDK."""


class OptionError(OutlitError, ValueError):
    """A client option is missing or out of range."""


class InvalidEventError(OutlitError, ValueError):
    """A tracking call lacks the identity it needs or has a field of the wrong type."""


class ClientClosedError(OutlitError, RuntimeError):
    """The client was shut down; it accepts no more calls."""
