"""The SDK's loggers, which never raise.

``logging`` lets a handler's or filter's exception out of the logging call (only ``emit``
errors go to ``Handler.handleError``). An app's logging set-up can raise that way, such as a
filter that reads a request-bound value (Flask's ``g``, a context variable) outside a request.
Every log call of outlit goes through :class:`SafeLogger`. If the app's logging raises, the
log line is lost and one line on stderr says so, once per process. The call that logged goes
on: a view does not fail, and the background worker does not die in the middle of a batch.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import Any

_said_broken = False


def without_credentials(text: object, *urls: object) -> str:
    """``str(text)`` with credentials blanked out: the ``user:password@`` of each of ``urls``
    (the values the text may quote, a proxy's or an API host's, whatever their characters),
    then any other that looks like a URL's. For messages about proxies and hosts."""
    import re

    shown = str(text)
    for url in urls:
        if not isinstance(url, str):
            continue
        # Up to the last @: a password may hold an unencoded @, / or # (which URL parsers
        # then misread, quoting part of it as a port or a path in their messages).
        userinfo, at, _ = (url.split("://", 1)[1] if "://" in url else url).rpartition("@")
        if not (at and userinfo):
            continue
        shown = shown.replace(userinfo + "@", "***@")
        password = userinfo.partition(":")[2]
        pieces = {password, *re.split(r"[/?#@]", password)}
        for piece in sorted(pieces, key=len, reverse=True):
            if len(piece) >= 3:
                shown = shown.replace(piece, "***")
    shown = re.sub(r"(//)[^\s'\"/@]*@", r"\1***@", shown)
    return re.sub(r"[^\s'\"/:@]+:[^\s'\"/@]+@", "***@", shown)


class SafeLogger:
    """The methods of ``logging.Logger`` that outlit calls, with exceptions from the app's
    handlers and filters swallowed. Records name the caller, not this wrapper."""

    __slots__ = ("logger",)

    def __init__(self, name: str) -> None:
        self.logger = logging.getLogger(name)

    def isEnabledFor(self, level: int) -> bool:
        return self.logger.isEnabledFor(level)

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
        try:
            self.logger.log(level, msg, *args, **kwargs)
        except Exception as exc:
            _say_broken(exc)

    def debug(self, msg: object, *args: Any, **kwargs: Any) -> None:
        if self.logger.isEnabledFor(logging.DEBUG):
            kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
            self.log(logging.DEBUG, msg, *args, **kwargs)

    def info(self, msg: object, *args: Any, **kwargs: Any) -> None:
        kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
        self.log(logging.INFO, msg, *args, **kwargs)

    def warning(self, msg: object, *args: Any, **kwargs: Any) -> None:
        kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
        self.log(logging.WARNING, msg, *args, **kwargs)

    def error(self, msg: object, *args: Any, **kwargs: Any) -> None:
        kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
        self.log(logging.ERROR, msg, *args, **kwargs)

    def exception(self, msg: object, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("exc_info", True)
        kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
        self.log(logging.ERROR, msg, *args, **kwargs)


def get_logger(name: str) -> SafeLogger:
    return SafeLogger(name)


def _say_broken(exc: Exception) -> None:
    global _said_broken
    if _said_broken:
        return
    _said_broken = True
    with contextlib.suppress(Exception):  # no usable stderr either
        sys.stderr.write(
            f"outlit: a logging handler or filter raised {type(exc).__name__}: "
            f"{(str(exc).splitlines() or [''])[0]}; "
            "outlit's log lines that meet it are lost (said once)\n"
        )
