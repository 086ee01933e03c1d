"""settings.OUTLIT and the process-wide client: defaults, environment fallback, laziness, and
replacement when the setting changes."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from unittest import mock

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, override_settings
from djtestproject import BASE_OUTLIT, PUBLIC_KEY

from outlit import ClientClosedError, MockTransport, Outlit, RetryPolicy
from outlit_django import outlit
from outlit_django.client import get_client, peek_client

REPO = Path(__file__).resolve().parents[2]


def test_the_app_and_commands_that_never_track_create_no_client_and_no_thread():
    # What `gunicorn --preload` and `manage.py migrate` do: import the app, run the checks,
    # load the WSGI and ASGI handlers (which build the middleware). Nothing may be created,
    # but the modules the client needs are loaded with the app, not by the first request (which
    # took about 9 ms more for it, and left free blocks in the heap that made every later
    # request's large allocations slower).
    code = textwrap.dedent(
        """
        import sys, threading
        import django
        from django.conf import settings
        settings.configure(
            SECRET_KEY="x", USE_TZ=True, ROOT_URLCONF=[],
            INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "outlit_django"],
            MIDDLEWARE=["django.contrib.auth.middleware.AuthenticationMiddleware",
                        "outlit_django.middleware.OutlitMiddleware"],
            OUTLIT={"PUBLIC_KEY": "pk_lazy", "API_HOST": "http://127.0.0.1:9"},
        )
        from django.core.management import call_command
        from django.core.wsgi import get_wsgi_application
        from django.core.asgi import get_asgi_application
        get_wsgi_application()
        get_asgi_application()
        import io
        call_command("check", stdout=io.StringIO())
        from outlit_django import outlit
        from outlit_django.client import peek_client
        import outlit._client as core
        print(peek_client() is None, len(core._live_clients), threading.active_count())
        print(all(f"outlit.{name}" in sys.modules for name in ("_worker", "_transport")))
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OUTLIT_", "DJANGO_"))}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "0", "1", "True"]


def test_the_client_is_created_on_first_use_from_settings(configure_outlit):
    configure_outlit(MAX_BATCH_SIZE=7, TIMEOUT=3, RETRY=RetryPolicy(initial_backoff=0.1))
    assert peek_client() is None
    assert "first use" in repr(outlit)
    assert outlit.options.max_batch_size == 7
    client = peek_client()
    assert client is not None and client is get_client()
    assert isinstance(outlit, Outlit)
    assert client.options.timeout == 3.0
    assert client.options.retry == RetryPolicy(initial_backoff=0.1)
    assert client.options.public_key == PUBLIC_KEY
    assert repr(outlit) == repr(client)


def test_a_method_of_the_proxy_can_be_patched_in_tests_and_is_restored(configure_outlit):
    transport = configure_outlit()
    with mock.patch.object(outlit, "track") as patched:
        outlit.track(email="jane@acme.com", event_name="patched")
    patched.assert_called_once_with(email="jane@acme.com", event_name="patched")
    with mock.patch("outlit_django.outlit.identify") as patched:
        outlit.identify(email="jane@acme.com")
    patched.assert_called_once_with(email="jane@acme.com")
    # Restored: the calls reach the client again.
    assert outlit.track == get_client().track
    outlit.track(email="jane@acme.com", event_name="real")
    outlit.identify(email="jane@acme.com")
    assert outlit.flush(timeout=5)
    assert [e["type"] for e in transport.events] == ["custom", "identify"]
    assert transport.events[0]["eventName"] == "real"


def test_unset_keys_take_the_client_defaults(configure_outlit):
    configure_outlit()
    options = get_client().options
    assert (options.flush_interval, options.max_batch_size, options.timeout) == (60.0, 100, 10.0)
    assert options.max_queue_size == 10_000
    assert options.shutdown_timeout == 5.0
    assert options.api_host == "https://app.outlit.ai"


def test_changing_the_setting_replaces_the_client_and_delivers_what_the_old_one_held():
    first = MockTransport()
    with override_settings(OUTLIT={**BASE_OUTLIT, "TRANSPORT": first}):
        old = get_client()
        outlit.track(email="jane@acme.com", event_name="before_change")
        second = MockTransport()
        with override_settings(OUTLIT={**BASE_OUTLIT, "TRANSPORT": second, "TIMEOUT": 2}):
            assert old.closed
            assert [e["eventName"] for e in first.events] == ["before_change"]
            outlit.track(email="jane@acme.com", event_name="after_change")
            assert get_client() is not old
            assert get_client().options.timeout == 2.0
            assert outlit.flush(timeout=5)
            assert [e["eventName"] for e in second.events] == ["after_change"]
        with pytest.raises(ClientClosedError):
            old.track(email="jane@acme.com", event_name="too_late")


def test_public_key_and_host_fall_back_to_the_environment(monkeypatch, configure_outlit):
    monkeypatch.setenv("OUTLIT_PUBLIC_KEY", "pk_from_environment")
    monkeypatch.setenv("OUTLIT_API_HOST", "http://127.0.0.1:8787/")
    configure_outlit(PUBLIC_KEY=None)
    assert outlit.options.public_key == "pk_from_environment"
    assert outlit.options.api_host == "http://127.0.0.1:8787"
    assert outlit.options.enabled


@pytest.mark.parametrize("blank", ["", "   "])
def test_a_blank_key_falls_back_to_the_environment_as_the_checks_say(
    monkeypatch, configure_outlit, blank
):
    # The system checks pass this setting (blank counts as "use the environment"): the
    # client must agree, not refuse to start the server.
    from django.core.management import call_command

    monkeypatch.setenv("OUTLIT_PUBLIC_KEY", "pk_from_environment")
    configure_outlit(PUBLIC_KEY=blank)
    call_command("check")  # raises SystemCheckError on any error
    assert outlit.options.public_key == "pk_from_environment"
    assert outlit.options.enabled


def test_only_upper_case_keys_set_client_options(configure_outlit, caplog):
    # Lower-case keys are reported as unknown by the checks (W003): they must not be used.
    configure_outlit(enabled=False, max_batch_size=500)
    assert outlit.options.enabled
    assert outlit.options.max_batch_size == 100


@pytest.mark.parametrize(("debug", "level"), [(True, logging.WARNING), (False, logging.ERROR)])
def test_without_a_key_tracking_is_accepted_and_nothing_is_sent(
    configure_outlit, caplog, debug, level
):
    transport = configure_outlit(PUBLIC_KEY="")
    with override_settings(DEBUG=debug), caplog.at_level(logging.WARNING, logger="outlit"):
        outlit.track(email="jane@acme.com", event_name="report_exported")
    assert not outlit.options.enabled
    assert outlit.flush(timeout=1)
    assert transport.requests == []
    (record,) = [r for r in caplog.records if "no public key" in r.getMessage()]
    assert record.levelno == level
    # Programmer errors still surface while disabled, as the core promises.
    with pytest.raises(ValueError, match="email"):
        outlit.track(event_name="no_identity")


def test_enabled_false_sends_nothing_and_logs_nothing(configure_outlit, caplog):
    transport = configure_outlit(PUBLIC_KEY=None, ENABLED=False)
    with caplog.at_level(logging.DEBUG, logger="outlit"):
        outlit.track(email="jane@acme.com", event_name="report_exported")
        outlit.flush(timeout=1)
    assert transport.requests == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_value_the_client_refuses_raises_improperly_configured_naming_it(configure_outlit):
    configure_outlit(MAX_BATCH_SIZE=1000)
    with pytest.raises(
        ImproperlyConfigured,
        match=r"^settings\.OUTLIT\['MAX_BATCH_SIZE'\] must be between 1 and 100, got 1000$",
    ):
        outlit.track(email="jane@acme.com", event_name="x")


def test_a_bad_key_from_the_environment_is_blamed_on_the_environment(configure_outlit, monkeypatch):
    monkeypatch.setenv("OUTLIT_PUBLIC_KEY", "sk_live_123")
    configure_outlit(PUBLIC_KEY=None)
    with pytest.raises(
        ImproperlyConfigured, match=r"^The OUTLIT_PUBLIC_KEY environment variable must start"
    ):
        outlit.track(email="jane@acme.com", event_name="x")
    configure_outlit(PUBLIC_KEY="sk_live_123")
    with pytest.raises(ImproperlyConfigured, match=r"^settings\.OUTLIT\['PUBLIC_KEY'\] must"):
        outlit.track(email="jane@acme.com", event_name="x")
    # Only None falls back to the environment: "" is the setting's own value.
    configure_outlit(API_HOST="")
    with pytest.raises(ImproperlyConfigured, match=r"^settings\.OUTLIT\['API_HOST'\] must"):
        outlit.track(email="jane@acme.com", event_name="x")


def test_a_setting_that_is_not_a_dict_raises_improperly_configured():
    with (
        override_settings(OUTLIT=["PUBLIC_KEY", "pk_x"]),
        pytest.raises(ImproperlyConfigured, match="must be a dict"),
    ):
        get_client()


def test_the_middleware_refuses_bad_settings_when_the_server_loads_it(configure_outlit):
    configure_outlit(FLUSH_INTERVAL=0)
    with pytest.raises(ImproperlyConfigured, match=r"OUTLIT\['FLUSH_INTERVAL'\]"):
        Client().get("/quiet/")
    assert peek_client() is None


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("FLUSH_ON_REQUEST_FINISHED", 1),
        ("IDENTIFY_ON_LOGIN", "yes"),
        ("REQUEST_FLUSH_TIMEOUT", float("inf")),
    ],
)
def test_the_middleware_refuses_bad_integration_values_when_the_server_loads_it(
    configure_outlit, key, value
):
    # Servers do not run the system checks: these would silently fall back to the defaults.
    configure_outlit(**{key: value})
    with pytest.raises(ImproperlyConfigured, match=rf"OUTLIT\['{key}'\] must be"):
        Client().get("/quiet/")


def test_the_middleware_without_the_app_in_installed_apps_is_refused_at_load(configure_outlit):
    # Without the app, identify-on-login, the settings reset and the checks would silently not
    # run: the server refuses to start instead.
    without_app = ["django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions"]
    with (
        override_settings(INSTALLED_APPS=without_app),
        pytest.raises(ImproperlyConfigured, match='add "outlit_django" to INSTALLED_APPS'),
    ):
        Client().get("/quiet/")
    assert Client().get("/quiet/").content == b"quiet"  # with the app back, it loads
    with override_settings(INSTALLED_APPS=[*without_app, "outlit_django.apps.OutlitDjangoConfig"]):
        assert Client().get("/quiet/").content == b"quiet"  # the app named by its config


def test_transport_may_be_a_dotted_path_to_a_factory(configure_outlit):
    from djtestproject import identity

    configure_outlit(TRANSPORT="djtestproject.identity.make_transport")
    outlit.track(user_id="42", event_name="via_factory")
    assert outlit.flush(timeout=5)
    assert [e["eventName"] for e in identity.made[-1].events] == ["via_factory"]


def test_an_identity_path_that_does_not_import_is_reported_with_the_key(configure_outlit):
    configure_outlit(IDENTIFY_USER="djtestproject.identity.no_such_function")
    with pytest.raises(ImproperlyConfigured, match=r"\['IDENTIFY_USER'\].*cannot be imported"):
        Client().get("/quiet/")
