"""Pure ASGI middleware that gives every HTTP request ``request.state.outlit``, a tracker bound to
that request's identity, for Starlette apps and for FastAPI apps that prefer middleware."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from outlit._tracker import lookup_tracker, user_identity

from ._outlit import Outlit, _identify_lazily, _scope_identity

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send


class OutlitMiddleware:
    """``Middleware(OutlitMiddleware, outlit=outlit)``: sets ``request.state.outlit``.

    Written against ASGI directly rather than ``BaseHTTPMiddleware``, so context variables,
    streaming responses and background tasks behave as without it. Lifespan and websocket
    scopes pass through untouched. With ``Outlit(flush_after_response=True)`` it waits for
    queued events to be delivered once the app has sent its response (and run its background
    tasks), which covers every event of the request, including app-wide ``outlit.track``
    calls.
    """

    def __init__(self, app: ASGIApp, outlit: Outlit) -> None:
        if not isinstance(outlit, Outlit):
            raise TypeError(
                "OutlitMiddleware needs outlit=outlit_fastapi.Outlit(...), "
                f"got {type(outlit).__name__}"
            )
        if outlit._identify_is_depends:
            raise TypeError(
                "identify=Depends(...) is resolved by FastAPI's dependency injection, which "
                "middleware does not have: use Depends(outlit) in your routes, or pass identify "
                "a plain function of the request"
            )
        self.app = app
        self.outlit = outlit
        # What a request's tracker calls with the scope, when a call first needs the identity.
        self.identify_scope = functools.partial(_identify_from_scope, outlit._identify)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        outlit = self.outlit
        if outlit._request_check_due:
            outlit._check_on_request()
        identify = outlit._identify
        if identify is None:
            # client.bind(), built directly (as in Outlit.__call__) to save its import.
            tracker = lookup_tracker(outlit.client, _scope_identity, scope)
        elif outlit._identify_is_plain:
            # Called by the tracker only if a call needs the identity; the request it is given
            # is made only then (see _identify_from_scope).
            tracker = lookup_tracker(outlit.client, self.identify_scope, scope)
        else:
            # An async identify: awaited now, on a request without a receive channel (as in
            # _identify_from_scope).
            tracker = await outlit.tracker_for(Request(scope))
        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        state["outlit"] = tracker
        try:
            await self.app(scope, receive, send)
        finally:
            # The scope's state holds the tracker, and a lazy identity source holds the scope:
            # a reference cycle that only the garbage collector frees. Once the app is done, a
            # source not used yet is swapped for one that holds what it needs, not the scope
            # (built here directly: this runs on every request that did not track).
            if tracker._ids is not None:
                pass  # the identity was looked up during the request: nothing holds the scope
            elif identify is None:
                # The scope's user is final once the app is done.
                tracker._source = (user_identity, scope.get("user"))
            elif outlit._identify_is_plain:
                # A copy of the scope whose state leaves the tracker out: the same values,
                # without the way back to the tracker. The request is made only if needed.
                tracker._source = (
                    self.identify_scope,
                    {**scope, "state": {k: v for k, v in state.items() if v is not tracker}},
                )
            if outlit.flush_after_response:
                # The app returns after its last `http.response.body` message (and its
                # background tasks): the client already has the response when this wait starts.
                await outlit.flush_queued()


def _identify_from_scope(identify: Any, scope: Scope) -> Any:
    # A request without a receive channel: an identify function must not consume the request
    # body before the app reads it.
    return _identify_lazily(identify, Request(scope))
