"""Outlit for FastAPI and Starlette: ``Depends(outlit)``, a lifespan, and pure ASGI middleware.

    from fastapi import Depends, FastAPI
    from outlit_fastapi import Outlit

    outlit = Outlit(public_key="pk_...")           # or set OUTLIT_PUBLIC_KEY
    app = FastAPI(lifespan=outlit.lifespan)

    @app.post("/export")
    async def export(tracker=Depends(outlit)):
        tracker.track(event_name="report_exported", email="jane@acme.com")

Plain Starlette apps (or FastAPI apps that prefer middleware) add
``Middleware(OutlitMiddleware, outlit=outlit)`` and use ``request.state.outlit``.
"""

from __future__ import annotations

try:
    import starlette  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        'outlit_fastapi needs Starlette (and FastAPI for Depends): pip install "outlit[fastapi]"'
    ) from exc

from outlit import BoundTracker

from ._middleware import OutlitMiddleware
from ._outlit import (
    DEFAULT_FLUSH_AFTER_RESPONSE_TIMEOUT,
    IdentifyFunction,
    Outlit,
    request_identity,
)

__all__ = [
    "DEFAULT_FLUSH_AFTER_RESPONSE_TIMEOUT",
    "BoundTracker",
    "IdentifyFunction",
    "Outlit",
    "OutlitMiddleware",
    "request_identity",
]
