"""``flask outlit send | flush | check`` through ``app.test_cli_runner()``, against a real
collector on loopback."""

from __future__ import annotations

import socket
import time

import pytest
from flask import Flask

from outlit._collector.server import Collector
from outlit_flask import Outlit


def _collector_app(make_app, collector: Collector, **config) -> Flask:
    app = make_app(OUTLIT_API_HOST=collector.url, OUTLIT_TRANSPORT=None, **config)
    Outlit(app)
    return app


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_send_delivers_one_test_event_and_says_so(make_app, collector):
    app = _collector_app(make_app, collector)

    result = app.test_cli_runner().invoke(args=["outlit", "send"])

    assert result.exit_code == 0, result.output
    assert "Delivered 'outlit_test_event'" in result.output
    assert "HTTP 200" in result.output
    (event,) = collector.events()
    assert event["eventName"] == "outlit_test_event"
    assert event["fingerprint"] == "outlit-flask-cli"
    assert event["properties"] == {"source": "flask outlit send"}


def test_send_as_a_user_with_its_own_event_name(make_app, collector):
    app = _collector_app(make_app, collector)

    result = app.test_cli_runner().invoke(
        args=["outlit", "send", "--email", "ada@example.com", "--event-name", "smoke_test"]
    )

    assert result.exit_code == 0, result.output
    (event,) = collector.events()
    assert (event["eventName"], event["email"]) == ("smoke_test", "ada@example.com")
    assert "fingerprint" not in event


def test_send_reports_a_refused_key_and_fails(make_app, collector):
    collector.status = 401
    app = _collector_app(make_app, collector)

    result = app.test_cli_runner().invoke(args=["outlit", "send"])

    assert result.exit_code == 1
    assert "was not delivered" in result.output
    assert "HTTP 401: Invalid or inactive tracking configuration" in result.output
    assert "dropped (invalid_key)" in result.output
    assert collector.events() == []


def test_send_gives_up_after_its_timeout_when_nothing_answers(make_app):
    app = make_app(OUTLIT_API_HOST=f"http://127.0.0.1:{_closed_port()}", OUTLIT_TRANSPORT=None)
    Outlit(app)

    started = time.monotonic()
    result = app.test_cli_runner().invoke(args=["outlit", "send", "--timeout", "0.5"])

    assert result.exit_code == 1
    assert time.monotonic() - started < 3.0
    assert "still not sent after 0.5 s" in result.output
    assert "ConnectionRefusedError" in result.output


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["send", "--event-name", ""], "track() needs event_name"),
        (["send", "--user-id", " "], "needs at least one of"),
        (["send", "--timeout", "nan"], "expected a finite number of seconds > 0, got nan"),
        (["send", "--timeout", "0"], "expected a finite number of seconds > 0, got 0.0"),
        (["flush", "--timeout", "-1"], "expected a finite number of seconds > 0, got -1.0"),
        (["check", "--timeout", "inf"], "expected a finite number of seconds > 0, got inf"),
    ],
)
def test_bad_arguments_are_usage_errors_not_tracebacks(make_app, args, said):
    app = make_app()
    Outlit(app)

    result = app.test_cli_runner().invoke(args=["outlit", *args])

    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert said in result.output
    assert "Traceback" not in result.output


def test_send_refuses_when_tracking_is_disabled(make_app):
    app = make_app(OUTLIT_ENABLED=False)
    Outlit(app)

    result = app.test_cli_runner().invoke(args=["outlit", "send"])

    assert result.exit_code == 1
    assert "OUTLIT_ENABLED is False" in result.output


def test_flush_sends_what_this_process_queued(make_app, collector):
    app = _collector_app(make_app, collector)
    with app.app_context():
        app.extensions["outlit"].track(event_name="queued_at_startup", user_id="u1")

    result = app.test_cli_runner().invoke(args=["outlit", "flush"])

    assert result.exit_code == 0, result.output
    assert "Flushed 1 events." in result.output
    assert [e["eventName"] for e in collector.events()] == ["queued_at_startup"]


def test_flush_with_an_empty_queue_explains_where_server_events_go(make_app, collector):
    app = _collector_app(make_app, collector)

    result = app.test_cli_runner().invoke(args=["outlit", "flush"])

    assert result.exit_code == 0
    assert "Nothing was queued in this process" in result.output


def test_flush_fails_when_events_stay_queued(make_app):
    app = make_app(OUTLIT_API_HOST=f"http://127.0.0.1:{_closed_port()}", OUTLIT_TRANSPORT=None)
    Outlit(app)
    with app.app_context():
        app.extensions["outlit"].track(event_name="stuck", user_id="u1")

    result = app.test_cli_runner().invoke(args=["outlit", "flush", "--timeout", "0.3"])

    assert result.exit_code == 1
    assert "1 events still queued after 0.3 s" in result.output


def test_check_shows_the_configuration_with_the_key_masked(make_app, collector, public_key):
    app = _collector_app(make_app, collector, login=True, OUTLIT_FLUSH_ON_TEARDOWN=True)

    result = app.test_cli_runner().invoke(args=["outlit", "check"])

    assert result.exit_code == 0, result.output
    assert public_key not in result.output
    assert f"OUTLIT_PUBLIC_KEY                {public_key[:7]}…" in result.output
    assert f"OUTLIT_API_HOST                  {collector.url}" in result.output
    assert "OUTLIT_FLUSH_ON_TEARDOWN         True" in result.output
    assert "OUTLIT_TEARDOWN_FLUSH_TIMEOUT    2.0" in result.output
    assert "Flask-Login LoginManager         found" in result.output
    assert "ok    connect:" in result.output
    assert "FAIL" not in result.output


def test_check_fails_when_the_api_host_cannot_be_reached(make_app):
    app = make_app(OUTLIT_API_HOST=f"http://127.0.0.1:{_closed_port()}", OUTLIT_TRANSPORT=None)
    Outlit(app)

    result = app.test_cli_runner().invoke(args=["outlit", "check", "--timeout", "1"])

    assert result.exit_code == 1
    assert "FAIL  connect:" in result.output
    assert "some checks failed" in result.output


def test_check_connects_to_the_proxy_that_sending_goes_through(make_app, monkeypatch):
    # Behind a forward proxy the API host may not even resolve here: sending works through
    # the proxy, and so must the check. (Nothing is sent: the check only connects.)
    with socket.socket() as proxy:
        proxy.bind(("127.0.0.1", 0))
        proxy.listen()
        proxy_port = proxy.getsockname()[1]
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy_port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        app = make_app(OUTLIT_API_HOST="https://outlit.invalid", OUTLIT_TRANSPORT=None)
        Outlit(app)

        result = app.test_cli_runner().invoke(args=["outlit", "check", "--timeout", "2"])

    assert result.exit_code == 0, result.output
    assert f"127.0.0.1:{proxy_port} (the proxy for outlit.invalid) accepted" in result.output


def test_check_of_an_app_on_a_transport_of_its_own_does_not_test_the_network(make_app):
    app = make_app(OUTLIT_API_HOST=f"http://127.0.0.1:{_closed_port()}")  # a MockTransport
    Outlit(app)

    result = app.test_cli_runner().invoke(args=["outlit", "check", "--timeout", "1"])

    assert result.exit_code == 0, result.output
    assert "ok    connect: not checked: the client sends through MockTransport" in result.output


def test_check_of_a_disabled_app_does_not_fail_on_the_connection(make_app):
    # Nothing is sent: an unreachable host is not a failure of this setup.
    app = make_app(OUTLIT_API_HOST=f"http://127.0.0.1:{_closed_port()}", OUTLIT_ENABLED=False)
    Outlit(app)

    result = app.test_cli_runner().invoke(args=["outlit", "check", "--timeout", "1"])

    assert result.exit_code == 0, result.output
    assert "connect" not in result.output.split("Checks:")[1]
    assert "connection to the API host is not checked" in result.output


def test_check_of_a_disabled_app_without_a_key_shows_none(make_app, monkeypatch):
    # Switched off, no key is needed: the check must not show the client's stand-in key as if
    # it were configured, nor pass a key check for it.
    monkeypatch.delenv("OUTLIT_PUBLIC_KEY", raising=False)
    app = make_app(OUTLIT_PUBLIC_KEY=None, OUTLIT_ENABLED=False)
    Outlit(app)

    result = app.test_cli_runner().invoke(args=["outlit", "check", "--timeout", "1"])

    assert result.exit_code == 0, result.output
    assert "pk_disa" not in result.output
    assert "OUTLIT_PUBLIC_KEY                (none)" in result.output
    assert "ok    public key: none, and none needed while OUTLIT_ENABLED is False" in result.output


def test_check_flags_a_placeholder_key(make_app):
    # A closed port on this machine: the check's connection test leaves 127.0.0.1 alone.
    app = make_app(OUTLIT_PUBLIC_KEY="pk_...", OUTLIT_API_HOST=f"http://127.0.0.1:{_closed_port()}")
    Outlit(app)

    result = app.test_cli_runner().invoke(args=["outlit", "check", "--timeout", "1"])

    assert result.exit_code == 1
    assert "FAIL  public key: 'pk_...' looks like a placeholder" in result.output


def test_the_commands_are_listed_under_flask_outlit(make_app):
    app = make_app()
    Outlit(app)

    result = app.test_cli_runner().invoke(args=["outlit", "--help"])

    assert result.exit_code == 0
    for command in ("send", "flush", "check"):
        assert f"  {command} " in result.output
