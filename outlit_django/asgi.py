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

HTTP and WebSocket connections go straight to the wrapped application.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .client import peek_client

logger = logging.getLogger("outlit.django")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
# Loose on purpose: Django's ASGIHandler and other ASGI apps spell these types differently.
ASGIApp = Callable[..., Awaitable[None]]


class OutlitLifespan:
    """Wraps a Django ASGI application; handles ``lifespan`` and passes everything else on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # Nothing to start: the client is created on first use.
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await flush_at_shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


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
