"""``OutlitMiddleware``: pure ASGI, ``request.state.outlit`` on HTTP requests, everything else
passed through untouched."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from outlit import BoundTracker
from outlit_fastapi import Outlit, OutlitMiddleware


async def export(request: Request) -> JSONResponse:
    tracker: BoundTracker = request.state.outlit
    tracker.track(event_name="report_exported", properties={"format": "pdf"})
    return JSONResponse({"identity": tracker.identity})


def _starlette_app(outlit: Outlit, *extra: Middleware, **kwargs: Any) -> Starlette:
    return Starlette(
        routes=[Route("/export", export, methods=["POST"])],
        middleware=[*extra, Middleware(OutlitMiddleware, outlit=outlit)],
        lifespan=outlit.lifespan,
        **kwargs,
    )


def test_starlette_app_tracks_through_request_state_to_a_real_collector(
    make_outlit, collector, auth_middleware
):
    outlit = make_outlit(api_host=collector.url, flush_interval=300)
    app = _starlette_app(outlit, *auth_middleware)
    with TestClient(app) as client:
        response = client.post("/export", headers={"X-User": "42:jane@acme.com"})
        assert response.json() == {"identity": {"user_id": "42", "email": "jane@acme.com"}}
    (event,) = collector.wait_for_events(1, timeout=5)
    assert event["eventName"] == "report_exported"
    assert (event["userId"], event["email"]) == ("42", "jane@acme.com")
    assert event["url"] == "server://jane@acme.com"


def test_fastapi_app_can_use_the_middleware_instead_of_the_dependency(make_outlit, transport):
    outlit = make_outlit()
    app = FastAPI(lifespan=outlit.lifespan)
    app.add_middleware(OutlitMiddleware, outlit=outlit)

    @app.post("/export")
    async def export_route(request: Request) -> dict[str, str]:
        request.state.outlit.track(event_name="report_exported", email="jane@acme.com")
        return {}

    with TestClient(app) as client:
        assert client.post("/export").status_code == 200
    assert [e["email"] for e in transport.events] == ["jane@acme.com"]


def test_sync_identify_runs_lazily_with_a_request_that_cannot_read_the_body(make_outlit, transport):
    seen: list[str] = []

    def identify(request: Request) -> dict[str, str]:
        seen.append(request.headers["x-tenant"])
        return {"customer_id": request.headers["x-tenant"]}

    outlit = make_outlit(identify=identify)

    async def quiet(request: Request) -> PlainTextResponse:
        return PlainTextResponse((await request.body()).decode())

    async def paid(request: Request) -> PlainTextResponse:
        request.state.outlit.customer.paid(properties={"plan": "pro"})
        return PlainTextResponse("ok")

    app = Starlette(
        routes=[Route("/quiet", quiet, methods=["POST"]), Route("/paid", paid, methods=["POST"])],
        middleware=[Middleware(OutlitMiddleware, outlit=outlit)],
        lifespan=outlit.lifespan,
    )
    with TestClient(app) as client:
        assert client.post("/quiet", content=b"body intact", headers={"X-Tenant": "t1"}).text == (
            "body intact"
        )
        assert client.post("/paid", headers={"X-Tenant": "t2"}).text == "ok"
    assert seen == ["t2"]
    (event,) = transport.events
    assert (event["type"], event["customerId"]) == ("billing", "t2")


def test_async_identify_is_awaited_by_the_middleware(make_outlit, transport):
    async def identify(request: Request) -> dict[str, str]:
        return {"email": request.headers["x-email"]}

    outlit = make_outlit(identify=identify)
    with TestClient(_starlette_app(outlit)) as client:
        response = client.post("/export", headers={"X-Email": "jane@acme.com"})
    assert response.json() == {"identity": {"email": "jane@acme.com"}}
    assert [e["email"] for e in transport.events] == ["jane@acme.com"]


def _reaches(start: Any, target: Any, depth: int = 4) -> bool:
    """Whether ``target`` is reachable from ``start`` in at most ``depth`` references."""
    seen = {id(start)}
    level = [start]
    for _ in range(depth):
        following = []
        for obj in level:
            for ref in gc.get_referents(obj):
                if ref is target:
                    return True
                if id(ref) not in seen and not isinstance(ref, type):
                    seen.add(id(ref))
                    following.append(ref)
        level = following
    return False


def _identify_from_headers(request: Request) -> dict[str, str]:
    return {"user_id": request.headers["x-user"].split(":")[0], "customer_id": request.state.org}


class _OrgMiddleware:
    """Sets ``request.state.org``, as an app's own middleware might."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope.setdefault("state", {})["org"] = "org_7"
        await self.app(scope, receive, send)


@pytest.mark.parametrize(
    ("identify", "outlit_first", "identity"),
    [
        (None, True, {"user_id": "42", "email": "jane@acme.com"}),
        (None, False, {"user_id": "42", "email": "jane@acme.com"}),
        (_identify_from_headers, True, {"user_id": "42", "customer_id": "org_7"}),
    ],
    ids=["user-outlit-outer", "user-auth-outer", "identify-function"],
)
def test_after_the_response_the_tracker_no_longer_holds_the_scope(
    make_outlit, transport, auth_middleware, identify, outlit_first, identity
):
    # The scope holds the tracker: a tracker holding the scope would make a reference cycle,
    # left to the garbage collector, for every request that tracks nothing.
    outlit = make_outlit(identify=identify)
    kept: list[tuple[BoundTracker, Scope]] = []

    async def quiet(request: Request) -> PlainTextResponse:
        kept.append((request.state.outlit, request.scope))
        return PlainTextResponse("ok")

    ours = Middleware(OutlitMiddleware, outlit=outlit)
    others = [*auth_middleware, Middleware(_OrgMiddleware)]
    app = Starlette(
        routes=[Route("/quiet", quiet)],
        middleware=[ours, *others] if outlit_first else [*others, ours],
        lifespan=outlit.lifespan,
    )
    with TestClient(app) as client:
        assert client.get("/quiet", headers={"X-User": "42:jane@acme.com"}).text == "ok"
        ((tracker, scope),) = kept
        assert _reaches(tracker._source, scope) is False
        assert _reaches(tracker._source, tracker) is False
        # A call made later still gets the request's identity.
        tracker.track(event_name="after_the_response")
        assert tracker.identity == identity
    (event,) = transport.events
    assert event["userId"] == "42"


def test_lifespan_and_websocket_scopes_pass_through_untouched(make_outlit):
    outlit = make_outlit()
    lifespan_ran: list[str] = []
    socket_state: list[Any] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        lifespan_ran.append("startup")
        yield
        lifespan_ran.append("shutdown")

    async def socket(websocket: WebSocket) -> None:
        socket_state.append(dict(websocket.scope.get("state") or {}))
        await websocket.accept()
        await websocket.send_text("hi")
        await websocket.close()

    app = Starlette(
        routes=[WebSocketRoute("/ws", socket)],
        middleware=[Middleware(OutlitMiddleware, outlit=outlit)],
        lifespan=outlit.wrap_lifespan(lifespan),
    )
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        assert ws.receive_text() == "hi"
    assert lifespan_ran == ["startup", "shutdown"]
    assert socket_state == [{}]


def test_middleware_hands_the_app_the_servers_own_receive_and_send(make_outlit):
    # Pure ASGI: no wrapping of the channels (BaseHTTPMiddleware would replace both).
    outlit = make_outlit()
    seen: dict[str, Any] = {}

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.update(receive=receive, send=send, tracker=scope["state"]["outlit"])
        await PlainTextResponse("ok")(scope, receive, send)

    middleware = OutlitMiddleware(inner, outlit=outlit)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""}
    asyncio.run(middleware(scope, receive, send))
    assert seen["receive"] is receive and seen["send"] is send
    assert isinstance(seen["tracker"], BoundTracker)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]


def test_middleware_refuses_what_it_cannot_use(make_outlit):
    async def app(scope: Scope, receive: Receive, send: Send) -> None:  # pragma: no cover
        pass

    with pytest.raises(TypeError, match=r"outlit_fastapi\.Outlit"):
        OutlitMiddleware(app, outlit=object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Depends"):
        OutlitMiddleware(app, outlit=make_outlit(identify=Depends(lambda: {"user_id": "u"})))
