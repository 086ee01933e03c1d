"""``OutlitLifespan``: the ASGI lifespan protocol for Django, so that Outlit flushes when an ASGI
server shuts down.

Django's ASGI handler does not speak the lifespan protocol, so under ASGI the client relies on
its interpreter-exit flush. uvicorn (0.29 and later) ends its process with the very signal that
stopped it once its graceful shutdown is over, and interpreter exit handlers never run then. The
lifespan ``shutdown`` event is the last thing such a server tells the application: this wrapper
answers the protocol and flushes there, waiting at most ``SHUTDOWN_TIMEOUT``::

    # asgi.py
    from django.core.asgi import get_asgi_application
    from outlit_django.asgi import OutlitLifespan

    application = OutlitLifespan(get_asgi_application())

HTTP and WebSocket connections go straight to the wrapped application. When a process serves
requests in async mode and no ``OutlitLifespan`` has run its startup, ``OutlitMiddleware`` logs
one warning (see :func:`warn_without_lifespan`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from outlit._log import get_logger

from .client import peek_client

logger = get_logger("outlit.django")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
# Loose on purpose: Django's ASGIHandler and other ASGI apps spell these types differently.
ASGIApp = Callable[..., Awaitable[None]]

# What this process has seen, for warn_without_lifespan(): an OutlitLifespan created, one that
# answered lifespan.startup, and the warning already given.
_wrapped = False
_started = False
_warned = False


class OutlitLifespan:
    """Wraps a Django ASGI application; handles ``lifespan`` and passes everything else on."""

    def __init__(self, app: ASGIApp) -> None:
        global _wrapped
        _wrapped = True
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        global _started
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # Nothing to start: the client is created on first use.
                _started = True
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await flush_at_shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


def warn_without_lifespan() -> None:
    """Log one warning per process when it serves requests in async mode and no
    ``OutlitLifespan`` has run its startup: nothing flushes the queue at server shutdown but the
    interpreter-exit handler, which never runs when uvicorn ends itself with the signal.

    ``OutlitMiddleware`` calls it at its first request in async mode. ASGI servers run the
    lifespan startup before they serve a request, so by then ``_started`` is set if it ever
    will be.
    """
    global _warned
    if _started or _warned:
        return
    _warned = True
    if not _wrapped:
        logger.warning(
            "outlit: the ASGI application is not wrapped in outlit_django.asgi.OutlitLifespan, "
            "so only the exit handler flushes Outlit's queue, and it never runs when uvicorn "
            "stops (uvicorn ends the process with the signal): queued events would be lost. "
            "Wrap it in asgi.py: application = OutlitLifespan(get_asgi_application()) "
            "(README: Django, ASGI)."
        )
    else:
        logger.warning(
            "outlit: OutlitLifespan wraps the ASGI application, but the server sent it no "
            "lifespan startup (uvicorn --lifespan off?), so only the exit handler flushes "
            "Outlit's queue, and it never runs when uvicorn stops: queued events would be "
            "lost. Turn the server's lifespan events on (uvicorn --lifespan auto or on); with a "
            "server that has none (daphne), events are flushed only if its process exits "
            "normally."
        )


async def flush_at_shutdown() -> None:
    """Deliver what the process-wide client holds, waiting at most its ``shutdown_timeout``.

    A flush rather than a shutdown: threads the application started may still track, and the
    interpreter-exit handler shuts the client down if the process gets that far.
    """
    client = peek_client()
    if client is None or client.closed:
        return
    try:
        result = await client.aflush(client.options.shutdown_timeout)
    except Exception:
        logger.exception("outlit: the flush at ASGI lifespan shutdown failed")
        return
    if not result:
        logger.warning(
            "outlit: %d events were still queued when the server shut down", result.pending
        )
