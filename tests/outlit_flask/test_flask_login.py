"""Flask-Login integration: one identify per login, and a fresh ``g.outlit`` after login/logout."""

from __future__ import annotations

import gc
import logging
from typing import Any

import pytest
from flask import Flask, g, jsonify
from flask_login import login_user, logout_user

import outlit
from outlit_flask import Outlit, current_user_identity


def _flushed_events(app: Flask, transport: outlit.MockTransport) -> list[dict[str, Any]]:
    with app.app_context():
        assert app.extensions["outlit"].flush(2.0)
    return transport.events


def _login_app(make_app: Any, users: dict[str, Any], **config: Any) -> Flask:
    app = make_app(login=True, **config)

    @app.post("/login/<user_id>")
    def login(user_id: str) -> str:
        login_user(users[user_id])
        return "ok"

    @app.post("/logout")
    def logout() -> str:
        logout_user()
        return "ok"

    return app


def test_login_sends_one_identify_with_email_and_user_id(make_app, transport, users):
    app = _login_app(make_app, users)
    Outlit(app)

    client = app.test_client()
    assert client.post("/login/1").status_code == 200
    client.post("/logout")

    (event,) = _flushed_events(app, transport)
    assert event["type"] == "identify"
    assert (event["email"], event["userId"]) == ("ada@example.com", "1")
    assert event["url"] == "server://ada@example.com"


def test_identify_on_login_can_be_switched_off(make_app, transport, users):
    app = _login_app(make_app, users, OUTLIT_IDENTIFY_ON_LOGIN=False)
    Outlit(app)

    app.test_client().post("/login/1")
    assert _flushed_events(app, transport) == []


def test_login_identify_adds_what_the_identity_loader_returns(make_app, transport, users):
    app = _login_app(make_app, users)
    extension = Outlit(app)

    @extension.identity_loader
    def identity() -> dict[str, Any]:
        return {**current_user_identity(), "customer_domain": "example.com"}

    app.test_client().post("/login/2")

    (event,) = _flushed_events(app, transport)
    assert (event["userId"], event["email"], event["customerDomain"]) == (
        "2",
        "grace@example.com",
        "example.com",
    )


def _raise_lookup_error() -> dict[str, Any]:
    raise LookupError("team store down")


@pytest.mark.parametrize(
    ("loader", "logged"),
    [
        (_raise_lookup_error, "the identity function raised during login"),
        (lambda: ["customer_domain", "example.com"], "the identity function returned a list"),
        (
            lambda: {"email": 123, "customer_domain": "example.com"},
            "the identity function's email must be a string, got int",
        ),
    ],
    ids=["raises", "not_a_mapping", "wrong_type"],
)
def test_a_faulty_identity_loader_costs_the_login_identify_only_its_own_fields(
    make_app, transport, users, caplog, loader, logged
):
    # Flask-Login's user still gives email and user_id: the identify that lets Outlit infer
    # the signed_up stage is sent with them, and the loader's problem is logged.
    app = _login_app(make_app, users)
    Outlit(app).identity_loader(loader)

    with caplog.at_level(logging.ERROR, logger="outlit"):
        assert app.test_client().post("/login/2").status_code == 200

    (event,) = _flushed_events(app, transport)
    assert (event["type"], event["userId"], event["email"]) == (
        "identify",
        "2",
        "grace@example.com",
    )
    assert event.get("customerDomain") == ("example.com" if "email" in logged else None)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and logged in errors[0], errors


def test_a_tracker_used_before_login_tracks_the_new_user_after_it(make_app, transport, users):
    app = make_app(login=True, OUTLIT_IDENTIFY_ON_LOGIN=False)
    extension = Outlit(app)

    @extension.identity_loader
    def identity() -> dict[str, Any]:
        # Anonymous visitors are known by a device cookie; logged-in users by Flask-Login.
        return current_user_identity() or {"fingerprint": "device-9"}

    @app.post("/signup")
    def signup() -> str:
        g.outlit.track(event_name="signup_form_submitted")
        login_user(users["1"])
        g.outlit.track(event_name="account_created")
        logout_user()
        g.outlit.track(event_name="signed_out")
        return "ok"

    app.test_client().post("/signup")

    before, after, out = _flushed_events(app, transport)
    assert before["fingerprint"] == "device-9"
    assert "userId" not in before
    assert (after["userId"], after["email"]) == ("1", "ada@example.com")
    assert out["fingerprint"] == "device-9"
    assert "userId" not in out


def test_logout_leaves_later_requests_anonymous(make_app, transport, users):
    app = _login_app(make_app, users, OUTLIT_IDENTIFY_ON_LOGIN=False)
    Outlit(app)

    @app.get("/me")
    def me() -> Any:
        return jsonify(g.outlit.identity)

    client = app.test_client()
    client.post("/login/2")
    assert client.get("/me").get_json() == {"user_id": "2", "email": "grace@example.com"}
    client.post("/logout")
    assert client.get("/me").get_json() == {}


def test_a_login_in_another_app_does_not_identify_on_this_apps_client(make_app, transport, users):
    tracked = _login_app(make_app, users)
    Outlit(tracked)
    untracked = _login_app(make_app, users)

    untracked.test_client().post("/login/1")
    assert _flushed_events(tracked, transport) == []


def test_a_failing_identify_never_breaks_the_login(make_app, transport, users, caplog):
    app = _login_app(make_app, users)
    Outlit(app)
    app.extensions["outlit"].shutdown()

    with caplog.at_level(logging.ERROR, logger="outlit"):
        response = app.test_client().post("/login/1")

    assert response.status_code == 200
    assert "could not queue the identify for a login" in caplog.text
    assert transport.events == []


def test_login_identify_survives_garbage_collection(make_app, transport, users):
    # The signal receivers are weak references: they must live as long as the app does.
    app = _login_app(make_app, users)
    Outlit(app)
    gc.collect()

    app.test_client().post("/login/1")
    assert [e["type"] for e in _flushed_events(app, transport)] == ["identify"]
