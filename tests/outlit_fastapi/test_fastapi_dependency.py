"""``Depends(outlit)``: every route gets a tracker bound to its request's identity.

No ``from __future__ import annotations`` here: FastAPI reads route annotations at run time, and
these routes are defined inside the tests, next to the local ``outlit`` they depend on.
"""

import logging
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, Header, Request, WebSocket
from fastapi.testclient import TestClient

from outlit import BoundTracker, InvalidEventError, MockTransport, OptionError
from outlit import Outlit as CoreClient
from outlit_fastapi import Outlit, request_identity


def _authenticated_app(outlit: Outlit, auth_middleware: list[Any]) -> FastAPI:
    return FastAPI(lifespan=outlit.lifespan, middleware=auth_middleware)


def test_async_route_tracks_and_the_lifespan_delivers_at_exit(make_outlit, transport):
    outlit = make_outlit()
    app = FastAPI(lifespan=outlit.lifespan)

    @app.post("/export")
    async def export(tracker=Depends(outlit)):
        tracker.track(event_name="report_exported", email="jane@acme.com", properties={"n": 1})
        return {"ok": True}

    with TestClient(app) as client:
        assert client.post("/export").json() == {"ok": True}
    (event,) = transport.events
    assert event["eventName"] == "report_exported"
    assert event["email"] == "jane@acme.com"
    assert event["properties"] == {"n": 1}


def test_sync_route_gets_a_tracker_too(make_outlit, transport):
    outlit = make_outlit()
    app = FastAPI(lifespan=outlit.lifespan)

    @app.get("/sync")
    def sync_route(tracker=Depends(outlit)):
        tracker.track(event_name="sync_route_used", user_id="u1")
        return {"tracker": type(tracker).__name__}

    with TestClient(app) as client:
        assert client.get("/sync").json() == {"tracker": "BoundTracker"}
    assert [e["eventName"] for e in transport.events] == ["sync_route_used"]


def test_annotated_dependency_gives_a_bound_tracker(make_outlit):
    outlit = make_outlit()
    Tracker = Annotated[BoundTracker, Depends(outlit)]
    seen: list[Any] = []
    app = FastAPI(lifespan=outlit.lifespan)

    @app.get("/")
    async def index(tracker: Tracker):
        seen.append(tracker)
        return {}

    with TestClient(app) as client:
        client.get("/")
        client.get("/")
    assert len(seen) == 2
    assert all(isinstance(tracker, BoundTracker) for tracker in seen)
    assert seen[0] is not seen[1], "each request has its own tracker"
    assert seen[0].client is outlit.client


def test_authenticated_request_user_fills_identity_for_calls_that_name_none(
    auth_middleware, make_outlit, transport
):
    outlit = make_outlit()
    app = _authenticated_app(outlit, auth_middleware)

    @app.post("/export")
    async def export(tracker: Annotated[BoundTracker, Depends(outlit)]):
        tracker.track(event_name="report_exported")
        tracker.user.activate(properties={"flow": "onboarding"})
        tracker.identify(traits={"plan": "pro"})
        return {}

    with TestClient(app) as client:
        client.post("/export", headers={"X-User": "42:jane@acme.com"})
    custom, stage, identify = transport.events
    assert (custom["userId"], custom["email"]) == ("42", "jane@acme.com")
    assert stage["properties"]["__userId"] == "42"
    assert stage["properties"]["__email"] == "jane@acme.com"
    assert identify["traits"] == {"plan": "pro"}
    assert identify["userId"] == "42"


def test_starlette_simple_user_is_identified_by_its_username(
    auth_middleware, make_outlit, transport
):
    outlit = make_outlit()
    app = _authenticated_app(outlit, auth_middleware)

    @app.post("/export")
    async def export(tracker: Annotated[BoundTracker, Depends(outlit)]):
        tracker.track(event_name="report_exported")
        return {}

    with TestClient(app) as client:
        client.post("/export", headers={"X-Simple-User": "jane"})
    (event,) = transport.events
    assert event["userId"] == "jane"
    assert "email" not in event


def test_explicit_identity_wins_over_the_request_user(auth_middleware, make_outlit, transport):
    outlit = make_outlit()
    app = _authenticated_app(outlit, auth_middleware)

    @app.post("/admin/export")
    async def export(tracker: Annotated[BoundTracker, Depends(outlit)]):
        # An admin acting for a customer: only the customer's identity is sent.
        tracker.track(event_name="export_for_customer", customer_id="cust_9")
        return {}

    with TestClient(app) as client:
        client.post("/admin/export", headers={"X-User": "1:admin@example.com"})
    (event,) = transport.events
    assert event["customerId"] == "cust_9"
    assert "userId" not in event and "email" not in event


def test_anonymous_request_call_without_identity_raises_at_the_call_site(
    auth_middleware, make_outlit
):
    outlit = make_outlit()
    app = _authenticated_app(outlit, auth_middleware)

    @app.post("/export")
    async def export(tracker: Annotated[BoundTracker, Depends(outlit)]):
        tracker.track(event_name="report_exported")
        return {}

    with TestClient(app) as client, pytest.raises(InvalidEventError, match="track"):
        client.post("/export")


def test_request_identity_is_empty_without_authentication_middleware(make_outlit):
    outlit = make_outlit()
    app = FastAPI(lifespan=outlit.lifespan)

    @app.get("/who")
    async def who(request: Request, tracker: Annotated[BoundTracker, Depends(outlit)]):
        return {"identity": request_identity(request), "bound": tracker.identity}

    with TestClient(app) as client:
        assert client.get("/who").json() == {"identity": {}, "bound": {}}


def test_sync_identify_function_runs_once_and_only_when_a_call_needs_it(make_outlit, transport):
    calls: list[str] = []

    def identify(request: Request) -> dict[str, str]:
        calls.append(request.url.path)
        return {"user_id": request.headers["x-account-user"]}

    outlit = make_outlit(identify=identify)
    app = FastAPI(lifespan=outlit.lifespan)

    @app.post("/quiet")
    async def quiet(tracker: Annotated[BoundTracker, Depends(outlit)]):
        return {}

    @app.post("/twice")
    async def twice(tracker: Annotated[BoundTracker, Depends(outlit)]):
        tracker.track(event_name="first")
        tracker.track(event_name="second")
        tracker.track(event_name="explicit", email="other@acme.com")
        return {}

    with TestClient(app) as client:
        client.post("/quiet", headers={"X-Account-User": "u7"})
        client.post("/twice", headers={"X-Account-User": "u7"})
    assert calls == ["/twice"]
    first, second, explicit = transport.events
    assert first["userId"] == second["userId"] == "u7"
    assert explicit["email"] == "other@acme.com" and "userId" not in explicit


def test_async_identify_function_is_awaited(make_outlit, transport):
    async def identify(request: Request) -> dict[str, str]:
        return {"email": request.headers["x-email"], "customer_id": "cust_1"}

    outlit = make_outlit(identify=identify)
    app = FastAPI(lifespan=outlit.lifespan)

    @app.post("/trial")
    async def trial(tracker: Annotated[BoundTracker, Depends(outlit)]):
        tracker.customer.trialing(properties={"days": 14})
        tracker.track(event_name="trial_started")
        return {}

    with TestClient(app) as client:
        client.post("/trial", headers={"X-Email": "jane@acme.com"})
    billing, custom = transport.events
    assert billing["status"] == "trialing" and billing["customerId"] == "cust_1"
    assert custom["email"] == "jane@acme.com" and custom["customerId"] == "cust_1"


def test_identify_can_use_fastapi_dependencies(make_outlit, transport):
    resolved: list[str] = []

    async def current_user_id(x_api_user: Annotated[str | None, Header()] = None) -> str | None:
        resolved.append("current_user_id")
        return x_api_user

    def identify(user_id: Annotated[str | None, Depends(current_user_id)]) -> dict[str, Any]:
        return {"user_id": user_id} if user_id else {}

    outlit = make_outlit(identify=Depends(identify))
    app = FastAPI(lifespan=outlit.lifespan)

    @app.post("/export")
    async def export(
        tracker: Annotated[BoundTracker, Depends(outlit)],
        user_id: Annotated[str | None, Depends(current_user_id)],
    ):
        tracker.track(event_name="report_exported")
        return {"user_id": user_id}

    with TestClient(app) as client:
        assert client.post("/export", headers={"X-API-User": "u5"}).json() == {"user_id": "u5"}
    assert resolved == ["current_user_id"], "FastAPI caches the shared dependency per request"
    (event,) = transport.events
    assert event["userId"] == "u5"


def test_identify_errors_are_logged_and_the_request_still_succeeds(make_outlit, transport, caplog):
    def broken_identify(request: Request) -> dict[str, str]:
        raise LookupError("session store is down")

    async def broken_async_identify(request: Request) -> dict[str, str]:
        raise LookupError("session store is down")

    for identify in (broken_identify, broken_async_identify):
        outlit = make_outlit(identify=identify)
        app = FastAPI(lifespan=outlit.lifespan)

        @app.post("/export")
        async def export(tracker: Annotated[BoundTracker, Depends(outlit)]):
            tracker.track(event_name="report_exported", customer_domain="acme.com")
            tracker.track(event_name="report_exported")  # dropped and counted, not raised
            return {"identity": tracker.identity}

        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="outlit"), TestClient(app) as client:
            response = client.post("/export")
        assert response.status_code == 200
        assert response.json() == {"identity": {}}
        failures = [r for r in caplog.records if "identity function raised" in r.getMessage()]
        assert len(failures) == 1, identify.__name__
        assert isinstance(failures[0].exc_info[1], LookupError)
        assert outlit.client.stats.dropped_by_reason == {"identity_failed": 1}

    assert [e["customerDomain"] for e in transport.events] == ["acme.com", "acme.com"]


def test_identify_returning_something_else_than_a_dict_is_logged(make_outlit, transport, caplog):
    class User:
        id = 3

    def sync_identify(request: Request) -> Any:
        return User()

    async def async_identify(request: Request) -> Any:
        return User()

    def dependency_identify() -> Any:
        return User()

    for identify in (sync_identify, async_identify, Depends(dependency_identify)):
        outlit = make_outlit(identify=identify)
        app = FastAPI()

        @app.get("/")
        async def index(tracker: Annotated[BoundTracker, Depends(outlit)]):
            # However identify is given, the request carries on: a call that names no identity
            # is dropped and counted, one that names its own is sent.
            tracker.track(event_name="dropped")
            tracker.track(event_name="sent", user_id="u1")
            return {"identity": tracker.identity}

        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="outlit"):
            response = TestClient(app).get("/")
        assert response.status_code == 200, identify
        assert response.json() == {"identity": {}}, identify
        (record,) = [r for r in caplog.records if r.exc_info]
        assert "must return a dict" in str(record.exc_info[1])
        assert outlit.client.flush(5)
        assert outlit.client.stats.dropped_by_reason == {"identity_failed": 1}, identify
    assert [e["eventName"] for e in transport.events] == ["sent"] * 3


def test_dependency_adds_nothing_to_the_openapi_schema(make_outlit):
    outlit = make_outlit(flush_after_response=True)
    app = FastAPI(lifespan=outlit.lifespan)

    @app.get("/items/{item_id}")
    async def item(item_id: int, tracker: Annotated[BoundTracker, Depends(outlit)]):
        return {}

    schema = TestClient(app).get("/openapi.json").json()
    parameters = schema["paths"]["/items/{item_id}"]["get"]["parameters"]
    assert [p["name"] for p in parameters] == ["item_id"]
    assert "requestBody" not in schema["paths"]["/items/{item_id}"]["get"]


def test_tests_can_override_the_dependency(make_outlit):
    outlit = make_outlit()
    app = FastAPI(lifespan=outlit.lifespan)

    @app.post("/export")
    async def export(tracker: Annotated[BoundTracker, Depends(outlit)]):
        tracker.track(event_name="report_exported", email="jane@acme.com")
        return {}

    recorder = MockTransport()
    other = Outlit(public_key="pk_override", transport=recorder)
    app.dependency_overrides[outlit] = lambda: other.bind({"user_id": "test"})
    try:
        with TestClient(app) as client:
            client.post("/export")
        other.flush(timeout=5)
        assert [e["eventName"] for e in recorder.events] == ["report_exported"]
    finally:
        other.shutdown(timeout=2)


def test_websocket_route_gets_a_tracker(auth_middleware, make_outlit, transport):
    outlit = make_outlit()
    app = _authenticated_app(outlit, auth_middleware)

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, tracker: Annotated[BoundTracker, Depends(outlit)]):
        await websocket.accept()
        tracker.track(event_name="socket_opened")
        await websocket.send_text("hi")
        await websocket.close()

    with (
        TestClient(app) as client,
        client.websocket_connect("/ws", headers={"X-User": "8:ws@acme.com"}) as socket,
    ):
        assert socket.receive_text() == "hi"
    (event,) = transport.events
    assert event["eventName"] == "socket_opened" and event["userId"] == "8"


def test_app_wide_calls_need_no_request(make_outlit, transport):
    outlit = make_outlit()
    outlit.track(event_name="nightly_job_done", customer_id="cust_1")
    outlit.identify(email="jane@acme.com", traits={"name": "Jane"})
    outlit.user.inactive(user_id="u1")
    outlit.customer.paid(customer_domain="acme.com", properties={"plan": "pro"})
    assert outlit.queue_size == 4
    assert outlit.flush(timeout=5)
    assert [e["type"] for e in transport.events] == ["custom", "identify", "stage", "billing"]
    assert outlit.stats.delivered == 4
    assert outlit.options.public_key == "pk_test_fastapi"


def test_client_options_fall_back_to_the_environment(monkeypatch):
    monkeypatch.setenv("OUTLIT_PUBLIC_KEY", "pk_from_env")
    monkeypatch.setenv("OUTLIT_API_HOST", "http://127.0.0.1:9/")
    outlit = Outlit()
    try:
        assert outlit.options.public_key == "pk_from_env"
        assert outlit.options.api_host == "http://127.0.0.1:9"
    finally:
        outlit.shutdown(timeout=0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"public_key": "not_a_key"},
        {"public_key": "pk_1", "flush_interval": 0},
        {"public_key": "pk_1", "flush_after_response": "yes"},
        {"public_key": "pk_1", "flush_after_response_timeout": 0},
        {"public_key": "pk_1", "flush_after_response_timeout": float("inf")},
        {"public_key": "pk_1", "identify": "user_id"},
        {"client": "not a client"},
        {"client": CoreClient(public_key="pk_1", enabled=False), "flush_interval": 1.0},
        {"client": CoreClient(public_key="pk_1", enabled=False), "public_key": "pk_2"},
    ],
)
def test_bad_options_raise_option_error(kwargs):
    with pytest.raises(OptionError):
        Outlit(**kwargs)
