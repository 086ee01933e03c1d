"""``g.outlit``: the request-bound tracker and the identity it fills in."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from flask import Flask, g, jsonify
from flask_login import current_user, login_user

import outlit
from outlit_flask import Outlit, current_user_identity


def _flushed_events(app: Flask, transport: outlit.MockTransport) -> list[dict[str, Any]]:
    with app.app_context():
        assert app.extensions["outlit"].flush(2.0)
    return transport.events


def _add_login_route(app: Flask, users: dict[str, Any]) -> None:
    @app.post("/login/<user_id>")
    def login(user_id: str) -> str:
        login_user(users[user_id])
        return "ok"


def test_g_outlit_fills_in_the_flask_login_user(make_app, transport, users):
    app = make_app(login=True, OUTLIT_IDENTIFY_ON_LOGIN=False)
    Outlit(app)
    _add_login_route(app, users)

    @app.post("/export")
    def export() -> str:
        g.outlit.track(event_name="report_exported", properties={"format": "pdf"})
        return "ok"

    client = app.test_client()
    client.post("/login/1")
    assert client.post("/export").status_code == 200

    (event,) = _flushed_events(app, transport)
    assert event["eventName"] == "report_exported"
    assert (event["userId"], event["email"]) == ("1", "ada@example.com")
    assert event["properties"] == {"format": "pdf"}


def test_a_user_without_email_is_tracked_by_user_id(make_app, transport, users):
    app = make_app(login=True, OUTLIT_IDENTIFY_ON_LOGIN=False)
    Outlit(app)
    _add_login_route(app, users)

    @app.post("/export")
    def export() -> str:
        g.outlit.user.activate()
        return "ok"

    client = app.test_client()
    client.post("/login/3")
    client.post("/export")

    (event,) = _flushed_events(app, transport)
    assert event["type"] == "stage"
    assert event["properties"] == {"__fingerprint": None, "__email": None, "__userId": "3"}


def test_explicit_identity_wins_over_the_logged_in_user(make_app, transport, users):
    app = make_app(login=True, OUTLIT_IDENTIFY_ON_LOGIN=False)
    Outlit(app)
    _add_login_route(app, users)

    @app.post("/invite")
    def invite() -> str:
        # An admin acting for someone else: nothing of the admin's identity is mixed in.
        g.outlit.track(event_name="invite_accepted", email="new@example.com")
        g.outlit.customer.paid(customer_domain="acme.com")
        return "ok"

    client = app.test_client()
    client.post("/login/1")
    client.post("/invite")

    custom, billing = _flushed_events(app, transport)
    assert custom["email"] == "new@example.com"
    assert "userId" not in custom
    assert billing["customerDomain"] == "acme.com"
    assert "customerId" not in billing


def test_an_anonymous_request_must_name_an_identity(make_app, transport):
    app = make_app(login=True)
    Outlit(app)
    raised: list[BaseException] = []

    @app.get("/")
    def index() -> str:
        try:
            g.outlit.track(event_name="page_viewed")
        except outlit.InvalidEventError as exc:
            raised.append(exc)
        g.outlit.track(event_name="page_viewed", fingerprint="device-1")
        return "ok"

    assert app.test_client().get("/").status_code == 200
    assert len(raised) == 1
    assert "fingerprint" in str(raised[0])
    (event,) = _flushed_events(app, transport)
    assert event["fingerprint"] == "device-1"


def test_identity_loader_registered_after_init_app_replaces_flask_login(make_app, transport, users):
    extension = Outlit()
    app = make_app(login=True, OUTLIT_IDENTIFY_ON_LOGIN=False)
    extension.init_app(app)
    _add_login_route(app, users)

    @extension.identity_loader
    def identity() -> dict[str, Any]:
        return {**current_user_identity(), "customer_domain": "acme.com", "fingerprint": None}

    @app.post("/export")
    def export() -> str:
        g.outlit.track(event_name="report_exported")
        return "ok"

    client = app.test_client()
    client.post("/login/2")
    client.post("/export")

    (event,) = _flushed_events(app, transport)
    assert (event["userId"], event["email"], event["customerDomain"]) == (
        "2",
        "grace@example.com",
        "acme.com",
    )
    assert "fingerprint" not in event


def test_identity_loader_runs_once_per_request_and_only_when_needed(make_app, transport):
    calls: list[int] = []

    def identity() -> dict[str, str]:
        calls.append(1)
        return {"user_id": "u7"}

    app = make_app()
    Outlit(app, identity_loader=identity)

    @app.get("/quiet")
    def quiet() -> str:
        return "no tracking here"

    @app.get("/busy")
    def busy() -> str:
        g.outlit.track(event_name="one")
        g.outlit.track(event_name="two")
        g.outlit.track(event_name="three", user_id="explicit")
        return "ok"

    client = app.test_client()
    client.get("/quiet")
    assert calls == []
    client.get("/busy")
    assert calls == [1]
    assert [e["userId"] for e in _flushed_events(app, transport)] == ["u7", "u7", "explicit"]


def test_identify_user_false_turns_identity_filling_off(make_app, transport, users):
    app = make_app(login=True, OUTLIT_IDENTIFY_USER=False, OUTLIT_IDENTIFY_ON_LOGIN=False)
    extension = Outlit(app, identity_loader=lambda: {"user_id": "never"})
    _add_login_route(app, users)
    outcome: list[str] = []

    @app.post("/export")
    def export() -> str:
        try:
            g.outlit.track(event_name="report_exported")
        except outlit.InvalidEventError:
            outcome.append("no identity")
        g.outlit.track(event_name="report_exported", customer_id="cust_9")
        return "ok"

    client = app.test_client()
    client.post("/login/1")
    client.post("/export")

    assert outcome == ["no identity"]
    (event,) = _flushed_events(app, transport)
    assert event["customerId"] == "cust_9"
    assert "userId" not in event
    assert extension.__repr__().startswith("<outlit_flask.Outlit identity_loader=")


def test_without_flask_login_or_loader_there_is_no_default_identity(make_app, transport):
    app = make_app()
    Outlit(app)

    @app.get("/")
    def index() -> Any:
        return jsonify(g.outlit.identity)

    assert app.test_client().get("/").get_json() == {}


def test_g_outlit_exists_for_a_before_request_hook_registered_earlier(make_app, transport):
    app = make_app()

    @app.before_request
    def gate() -> Any:
        # An auth gate that answers the request itself, tracking as it does.
        g.outlit.track(event_name="access_denied", fingerprint="device-2")
        return "denied", 403

    Outlit(app)

    assert app.test_client().get("/anything").status_code == 403
    (event,) = _flushed_events(app, transport)
    assert event["eventName"] == "access_denied"


def test_g_outlit_has_every_client_method(make_app, transport):
    app = make_app()
    Outlit(app, identity_loader=lambda: {"email": "ada@example.com", "customer_id": "cust_1"})
    seen: dict[str, Any] = {}

    @app.post("/all")
    def everything() -> str:
        tracker = g.outlit
        tracker.track(event_name="a")
        tracker.identify(traits={"plan": "pro"})
        tracker.user.identify(traits={"role": "admin"})
        tracker.user.activate()
        tracker.user.engaged()
        tracker.user.inactive()
        tracker.customer.trialing()
        tracker.customer.paid()
        tracker.customer.churned()
        seen["queue_size"] = tracker.queue_size
        seen["flushed"] = bool(tracker.flush(2.0))
        seen["client"] = tracker.client
        return "ok"

    app.test_client().post("/all")

    assert seen["queue_size"] == 9
    assert seen["flushed"]
    assert seen["client"] is app.extensions["outlit"]
    events = transport.events
    assert [e.get("stage") or e.get("status") or e["type"] for e in events] == [
        "custom",
        "identify",
        "identify",
        "activated",
        "engaged",
        "inactive",
        "trialing",
        "paid",
        "churned",
    ]
    assert all(e.get("customerId") == "cust_1" for e in events[6:])
    assert all(e["properties"]["__email"] == "ada@example.com" for e in events[3:6])


def test_a_failing_identity_loader_is_logged_and_explicit_calls_still_work(
    make_app, transport, caplog
):
    def broken() -> dict[str, str]:
        raise LookupError("session store down")

    app = make_app()
    Outlit(app, identity_loader=broken)

    @app.get("/")
    def index() -> str:
        g.outlit.track(event_name="page_viewed", fingerprint="device-3")
        return "ok"

    @app.get("/needs-identity")
    def needs_identity() -> str:
        g.outlit.track(event_name="page_viewed")  # dropped and counted: never raised here
        return "still answered"

    with caplog.at_level(logging.ERROR, logger="outlit"):
        assert app.test_client().get("/").status_code == 200
    # The loader is only asked when a call names no identity: this one did.
    assert "identity function raised" not in caplog.text

    with caplog.at_level(logging.ERROR, logger="outlit"):
        response = app.test_client().get("/needs-identity")
    assert response.status_code == 200
    assert response.text == "still answered"
    assert "identity function raised" in caplog.text
    assert "session store down" in caplog.text
    assert len(_flushed_events(app, transport)) == 1
    assert app.extensions["outlit"].stats.dropped_by_reason == {"identity_failed": 1}


def test_an_async_identity_loader_is_refused_when_registered():
    async def loader() -> dict[str, str]:
        return {"user_id": "u1"}

    extension = Outlit()
    with pytest.raises(TypeError, match=r"is async; g\.outlit calls it synchronously"):
        extension.identity_loader(loader)
    with pytest.raises(TypeError, match="is async"):
        Outlit(identity_loader=loader)


def test_current_user_identity_outside_a_request_is_empty(make_app):
    app = make_app(login=True)
    Outlit(app)
    with app.app_context():
        assert current_user_identity() == {}
    with app.test_request_context():
        assert not current_user.is_authenticated
        assert current_user_identity() == {}


# -- g.outlit is made when first read ---------------------------------------------------------


def test_requests_sharing_one_app_context_each_get_their_own_identity(make_app, transport):
    app = make_app()
    users = iter(["first@example.com", "second@example.com"])
    Outlit(app, identity_loader=lambda: {"email": next(users)})

    @app.post("/export")
    def export() -> str:
        g.outlit.track(event_name="exported")
        g.outlit.track(event_name="exported_again")  # the same tracker: looked up once
        return "ok"

    # A test that pushes an app context around its requests: both share one g.
    with app.app_context():
        client = app.test_client()
        assert client.post("/export").status_code == 200
        assert client.post("/export").status_code == 200
    events = _flushed_events(app, transport)
    assert [(e["eventName"], e["email"]) for e in events] == [
        ("exported", "first@example.com"),
        ("exported_again", "first@example.com"),
        ("exported", "second@example.com"),
        ("exported_again", "second@example.com"),
    ]


def test_g_outlit_answers_get_and_in_inside_a_request_only(make_app):
    app = make_app()
    Outlit(app)
    seen: dict[str, Any] = {}

    @app.get("/")
    def index() -> str:
        seen["same"] = g.outlit is g.outlit is g.get("outlit")
        seen["in"] = "outlit" in g
        return "ok"

    assert app.test_client().get("/").status_code == 200
    assert seen == {"same": True, "in": True}
    with app.app_context():  # a CLI command's context: no request, no tracker
        assert not hasattr(g, "outlit")
        assert g.get("outlit") is None
        assert "outlit" not in g
        with pytest.raises(AttributeError, match=r"exists while a request is handled"):
            _ = g.outlit


def test_outside_a_request_g_outlit_is_missing_even_when_the_apps_g_answers_unknown_names(
    make_app,
):
    from flask.ctx import _AppCtxGlobals

    class DefaultNone(_AppCtxGlobals):
        def __getattr__(self, name: str) -> Any:
            return None  # an app's g where unset names read as None

    app = make_app()
    app.app_ctx_globals_class = DefaultNone
    Outlit(app)
    seen: dict[str, Any] = {}

    @app.get("/")
    def index() -> str:
        seen["tracker"] = type(g.outlit).__name__
        seen["other"] = g.anything
        return "ok"

    assert app.test_client().get("/").status_code == 200
    assert seen == {"tracker": "BoundTracker", "other": None}
    with app.app_context():
        assert not hasattr(g, "outlit")
        assert g.get("outlit", "default") == "default"
        assert "outlit" not in g
        assert g.anything is None
        with pytest.raises(AttributeError, match=r"exists while a request is handled"):
            _ = g.outlit


def test_a_value_assigned_to_g_outlit_wins_for_the_rest_of_the_request(make_app):
    app = make_app()
    Outlit(app)
    stand_in = object()
    seen: dict[str, Any] = {}

    @app.get("/")
    def index() -> str:
        g.outlit = stand_in  # e.g. a test's own fake
        seen["read"] = g.outlit
        seen["get"] = g.get("outlit")
        del g.outlit
        seen["after_del"] = type(g.outlit).__name__
        return "ok"

    assert app.test_client().get("/").status_code == 200
    assert seen == {"read": stand_in, "get": stand_in, "after_del": "BoundTracker"}


def test_an_apps_own_globals_class_keeps_its_behaviour(make_app, transport):
    from flask.ctx import _AppCtxGlobals

    class Globals(_AppCtxGlobals):
        def tenant(self) -> str:
            return "acme"

    app = make_app()
    app.app_ctx_globals_class = Globals
    Outlit(app, identity_loader=lambda: {"customer_domain": "acme.com"})

    @app.get("/")
    def index() -> str:
        g.outlit.track(event_name="seen", properties={"tenant": g.tenant()})
        g.visits = 1  # ordinary attributes still work
        return str(g.visits)

    assert app.test_client().get("/").get_data(as_text=True) == "1"
    (event,) = _flushed_events(app, transport)
    assert (event["customerDomain"], event["properties"]) == ("acme.com", {"tenant": "acme"})


def test_g_outlit_works_in_a_test_request_context(make_app, transport):
    app = make_app()
    Outlit(app, identity_loader=lambda: {"user_id": "u-7"})
    with app.test_request_context("/"):
        g.outlit.track(event_name="from_a_unit_test")
    (event,) = _flushed_events(app, transport)
    assert (event["eventName"], event["userId"]) == ("from_a_unit_test", "u-7")


def test_a_tracker_kept_past_its_request_never_takes_another_requests_user(
    make_app, transport, users, caplog
):
    # The loader reads whatever request is current: a tracker that lives on (kept by the app,
    # or handed to a thread) must not find the next request's user, nor fail without a word.
    import threading

    app = make_app(login=True, OUTLIT_IDENTIFY_ON_LOGIN=False)
    Outlit(app)
    _add_login_route(app, users)
    kept: dict[str, Any] = {}
    from_thread: list[str] = []

    @app.post("/keep-unread")
    def keep_unread() -> str:
        kept["unread"] = g.outlit
        return "ok"

    @app.post("/keep")
    def keep() -> str:
        def in_a_thread(tracker: Any = g.outlit) -> None:
            try:
                tracker.track(event_name="from_a_thread")
            except outlit.InvalidEventError as exc:
                from_thread.append(str(exc))

        worker = threading.Thread(target=in_a_thread)
        worker.start()
        worker.join(5)
        # What the thread could not know is not kept: the request's own call has its user.
        g.outlit.track(event_name="own_call_after_the_thread")
        return "ok"

    @app.post("/keep-read")
    def keep_read() -> str:
        kept["read"] = g.outlit
        _ = g.outlit.identity  # looked up in its request, and kept
        return "ok"

    @app.post("/use")
    def use() -> str:
        kept["read"].track(event_name="kept_and_read")
        with pytest.raises(outlit.InvalidEventError):
            kept["unread"].track(event_name="kept_unread")
        return "ok"

    ada, other = app.test_client(), app.test_client()
    ada.post("/login/1")
    other.post("/login/2")
    with caplog.at_level(logging.WARNING, logger="outlit"):
        assert ada.post("/keep-unread").status_code == 200
        assert ada.post("/keep").status_code == 200
        assert ada.post("/keep-read").status_code == 200
        assert other.post("/use").status_code == 200
    assert len(from_thread) == 1
    # Each use outside the request says so (the thread's, then the kept tracker's in /use):
    # nothing is kept from a lookup that could not know the identity.
    assert caplog.text.count("g.outlit was used outside the request it was made for") == 2
    events = _flushed_events(app, transport)
    assert [(e["eventName"], e.get("userId")) for e in events] == [
        ("own_call_after_the_thread", "1"),
        ("kept_and_read", "1"),
    ]
