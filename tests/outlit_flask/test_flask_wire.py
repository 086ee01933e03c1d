"""What the extension sends, checked on a real collector on loopback (which validates every body
against the wire contract), and the client's signals as a Flask app receives them."""

from __future__ import annotations

from typing import Any

from flask import Flask, g
from flask_login import login_user

from outlit_flask import Outlit, signals


def _app(make_app: Any, collector: Any, users: dict[str, Any], **config: Any) -> Flask:
    app = make_app(login=True, OUTLIT_API_HOST=collector.url, OUTLIT_TRANSPORT=None, **config)
    Outlit(app)

    @app.post("/login/<user_id>")
    def login(user_id: str) -> str:
        login_user(users[user_id])
        return "ok"

    @app.post("/export/<int:report_id>")
    def export(report_id: int) -> str:
        g.outlit.track(event_name="report_exported", properties={"report_id": report_id})
        g.outlit.user.engaged(properties={"milestone": "first_export"})
        return "ok"

    return app


def test_request_events_reach_the_collector_with_the_users_identity(make_app, collector, users):
    app = _app(make_app, collector, users)
    client = app.test_client()
    client.post("/login/2")
    for report_id in range(3):
        assert client.post(f"/export/{report_id}").status_code == 200
    with app.app_context():
        assert app.extensions["outlit"].flush(5.0)

    events = collector.wait_for_events(7)
    identify = [e for e in events if e["type"] == "identify"]
    exported = [e for e in events if e.get("eventName") == "report_exported"]
    stages = [e for e in events if e["type"] == "stage"]
    assert [(e["email"], e["userId"]) for e in identify] == [("grace@example.com", "2")]
    assert sorted(e["properties"]["report_id"] for e in exported) == [0, 1, 2]
    assert all((e["email"], e["userId"]) == ("grace@example.com", "2") for e in exported)
    assert all(e["url"] == "server://grace@example.com" for e in exported)
    assert [e["properties"]["__userId"] for e in stages] == ["2", "2", "2"]
    assert collector.stats.events_rejected == 0


def test_flush_on_teardown_delivers_before_the_response_returns(make_app, collector, users):
    app = _app(make_app, collector, users, OUTLIT_FLUSH_ON_TEARDOWN=True)
    client = app.test_client()
    client.post("/login/1")
    client.post("/export/7")

    # Already stored: the collector commits before it answers, and teardown waited for it.
    stored = collector.events()
    assert len(stored) == 3
    assert {e["type"] for e in stored} == {"identify", "custom", "stage"}


def test_client_signals_name_the_apps_client_as_sender(make_app, collector, users):
    app = _app(make_app, collector, users)
    client_of_app = app.extensions["outlit"]
    delivered: list[tuple[Any, int, int]] = []

    def on_delivered(sender: Any, count: int, status: int, **extra: Any) -> None:
        delivered.append((sender, count, status))

    with signals.batch_delivered.connected_to(on_delivered, sender=client_of_app):
        app.test_client().post("/login/1")
        with app.app_context():
            assert app.extensions["outlit"].flush(5.0)

    assert delivered == [(client_of_app, 1, 200)]


def test_dropped_events_are_signalled_when_the_key_is_refused(make_app, collector, users):
    collector.status = 403
    app = _app(make_app, collector, users)
    dropped: list[tuple[int, str]] = []

    def on_dropped(sender: Any, count: int, reason: str, **extra: Any) -> None:
        dropped.append((count, reason))

    with signals.events_dropped.connected_to(on_dropped, sender=app.extensions["outlit"]):
        app.test_client().post("/login/1")
        with app.app_context():
            app.extensions["outlit"].flush(5.0)

    assert dropped == [(1, "invalid_key")]
    assert collector.events() == []
