"""System checks: each misconfiguration gets its namespaced id and a hint; a good one gets none."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.checks import Error, Warning, run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import SimpleTestCase, override_settings
from djtestproject import BASE_OUTLIT

from outlit import MockTransport, RetryPolicy

AUTH = "django.contrib.auth.middleware.AuthenticationMiddleware"
SESSIONS = "django.contrib.sessions.middleware.SessionMiddleware"
OURS = "outlit_django.middleware.OutlitMiddleware"


def outlit_messages(**outlit: Any) -> list[Any]:
    with override_settings(OUTLIT=outlit):
        return run_checks(tags=["outlit"])


def ids(messages: list[Any]) -> list[str]:
    return [message.id for message in messages]


class PublicKeyChecks(SimpleTestCase):
    def test_a_complete_configuration_passes(self):
        messages = outlit_messages(
            **BASE_OUTLIT,
            API_HOST="https://app.outlit.ai/",
            TIMEOUT=5,
            RETRY=RetryPolicy(),
            TRANSPORT=MockTransport(),
            IDENTIFY_USER="djtestproject.identity.organization_identity",
            FLUSH_ON_REQUEST_FINISHED=True,
            REQUEST_FLUSH_TIMEOUT=1.5,
        )
        assert messages == []

    @override_settings(DEBUG=False)
    def test_a_missing_key_is_an_error_in_production(self):
        (message,) = outlit_messages()
        assert isinstance(message, Error)
        assert message.id == "outlit_django.E001"
        assert "OUTLIT_PUBLIC_KEY" in message.hint
        assert "test runner" in message.hint  # where DEBUG is False without anyone saying so

    @override_settings(DEBUG=True)
    def test_a_missing_key_is_a_warning_in_development(self):
        (message,) = outlit_messages(PUBLIC_KEY="  ")
        assert isinstance(message, Warning)
        assert message.id == "outlit_django.W001"

    def test_a_missing_key_is_fine_when_tracking_is_disabled(self):
        assert outlit_messages(ENABLED=False) == []

    def test_the_environment_key_counts(self):
        with pytest.MonkeyPatch.context() as env:
            env.setenv("OUTLIT_PUBLIC_KEY", "pk_from_env")
            assert outlit_messages() == []
            env.setenv("OUTLIT_PUBLIC_KEY", "sk_secret_key")
            (message,) = outlit_messages()
        assert message.id == "outlit_django.E002"
        assert "OUTLIT_PUBLIC_KEY environment variable" in message.msg

    def test_a_key_of_the_wrong_form(self):
        for key in ("sk_live_123", "pk_a/b", 42):
            (message,) = outlit_messages(PUBLIC_KEY=key)
            assert message.id == "outlit_django.E002", key
            assert "pk_" in message.hint

    def test_a_placeholder_key_copied_from_the_docs(self):
        # The service and the local collector refuse it; every other check would pass it.
        for key in ("pk_...", "pk_<your key>", "pk_…"):
            (message,) = outlit_messages(PUBLIC_KEY=key)
            assert message.id == "outlit_django.E002", key
            assert "looks like a placeholder" in message.msg
        # Not when tracking is off, and not for a real key with stray spaces (the client strips).
        assert outlit_messages(PUBLIC_KEY="pk_...", ENABLED=False) == []
        assert outlit_messages(PUBLIC_KEY=" pk_live_abc123 ") == []


class ApiHostChecks(SimpleTestCase):
    def test_not_an_http_url(self):
        for host in ("app.outlit.ai", "ftp://example.com", "https://x.io/?a=1"):
            (message,) = outlit_messages(**BASE_OUTLIT, API_HOST=host)
            assert message.id == "outlit_django.E003", host

    def test_plain_http_to_another_machine_is_a_warning(self):
        (message,) = outlit_messages(**BASE_OUTLIT, API_HOST="http://collector.internal:8787")
        assert isinstance(message, Warning)
        assert message.id == "outlit_django.W002"
        assert "https" in message.hint

    def test_plain_http_to_this_machine_is_fine(self):
        for host in (
            "http://127.0.0.1:8787",
            "http://127.0.0.2:8787",  # any of 127.0.0.0/8 is this machine
            "http://localhost:8787",
            "http://[::1]:8787",
        ):
            assert outlit_messages(**BASE_OUTLIT, API_HOST=host) == [], host


class ValueChecks(SimpleTestCase):
    def test_each_bad_value_gets_its_own_error_naming_the_key(self):
        messages = outlit_messages(
            **{
                **BASE_OUTLIT,
                "MAX_BATCH_SIZE": 1000,
                "FLUSH_INTERVAL": -1,
                "TIMEOUT": "10",
                "ENABLED": "yes",
                "MAX_QUEUE_SIZE": 0,
                "RETRY": {"INITIAL_BACKOFF": 1},
                "IDENTIFY_ON_LOGIN": "no",
                "REQUEST_FLUSH_TIMEOUT": 0,
            }
        )
        assert set(ids(messages)) == {"outlit_django.E004"}
        named = sorted(message.msg.split("'")[1] for message in messages)
        assert named == [
            "ENABLED",
            "FLUSH_INTERVAL",
            "IDENTIFY_ON_LOGIN",
            "MAX_BATCH_SIZE",
            "MAX_QUEUE_SIZE",
            "REQUEST_FLUSH_TIMEOUT",
            "RETRY",
            "TIMEOUT",
        ]
        batch = next(m for m in messages if "MAX_BATCH_SIZE" in m.msg)
        assert "between 1 and 100" in batch.msg
        assert "default (100)" in batch.hint
        retry = next(m for m in messages if "RETRY" in m.msg)
        assert "default (outlit.RetryPolicy())" in retry.hint

    def test_a_setting_that_is_not_a_dict(self):
        with override_settings(OUTLIT="pk_123"):
            (message,) = run_checks(tags=["outlit"])
        assert message.id == "outlit_django.E005"

    def test_identity_and_transport_that_cannot_be_used(self):
        messages = outlit_messages(
            **BASE_OUTLIT,
            IDENTIFY_USER="djtestproject.identity.missing",
            TRANSPORT="no_such_module.Transport",
        )
        assert ids(messages) == ["outlit_django.E006", "outlit_django.E006"]
        (identity,) = [m for m in messages if "IDENTIFY_USER" in m.msg]
        assert "function(request) -> dict" in identity.hint
        (message,) = outlit_messages(**BASE_OUTLIT, IDENTIFY_USER=42)
        assert message.id == "outlit_django.E006"

    def test_what_the_server_refuses_at_start_up_the_checks_report(self):
        # Each of these passed the checks once, then stopped gunicorn as it loaded the
        # middleware: the checks now run the same resolution.
        from django.core.exceptions import ImproperlyConfigured

        from outlit_django.middleware import OutlitMiddleware

        cases = [
            ({"PUBLIC_KEY": "pk_"}, "outlit_django.E002"),
            ({"PUBLIC_KEY": "pk_live_abc123\u200b"}, "outlit_django.E002"),  # pasted
            ({"PUBLIC_KEY": "pk_", "ENABLED": False}, "outlit_django.E002"),
            ({**BASE_OUTLIT, "TRANSPORT": 42}, "outlit_django.E006"),
            (
                {**BASE_OUTLIT, "TRANSPORT": "djtestproject.transports.NOT_A_TRANSPORT"},
                "outlit_django.E006",
            ),
            (
                {**BASE_OUTLIT, "TRANSPORT": "djtestproject.transports.raising_factory"},
                "outlit_django.E006",
            ),
            (
                {**BASE_OUTLIT, "TRANSPORT": "djtestproject.transports.httpx_with_a_typo"},
                "outlit_django.E006",
            ),
        ]
        for outlit, expected in cases:
            with self.subTest(outlit=outlit), override_settings(OUTLIT=outlit):
                with pytest.raises(ImproperlyConfigured) as refused:
                    OutlitMiddleware(lambda request: None)  # what the server does at start-up
                (message,) = run_checks(tags=["outlit"])
                assert isinstance(message, Error)
                assert message.id == expected
                assert str(refused.value) in message.msg
                assert "the server would refuse to start" in message.msg

    def test_a_key_from_the_environment_with_bad_characters_names_the_variable(self):
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("OUTLIT_PUBLIC_KEY", "pk_live_abc123\u200b")
            (message,) = outlit_messages(PUBLIC_KEY="  ")
        assert message.id == "outlit_django.E002"
        assert message.msg.startswith("The OUTLIT_PUBLIC_KEY environment variable")

    def test_a_module_that_fails_to_load_is_reported_not_raised(self):
        messages = outlit_messages(
            **BASE_OUTLIT,
            IDENTIFY_USER="djtestproject.fails_to_load.identity",
            TRANSPORT="djtestproject.fails_to_load.transport",
        )
        assert ids(messages) == ["outlit_django.E006", "outlit_django.E006"]
        assert all("NameError: name 'undefined_name' is not defined" in m.msg for m in messages)

    def test_an_async_identity_function_is_refused(self):
        (message,) = outlit_messages(
            **BASE_OUTLIT, IDENTIFY_USER="djtestproject.identity.async_identity"
        )
        assert message.id == "outlit_django.E006"
        assert "is async: request.outlit calls it synchronously" in message.msg

    def test_an_unknown_key_suggests_the_closest_one(self):
        (message,) = outlit_messages(**BASE_OUTLIT, FLUSH_INTERVALL=5)
        assert message.id == "outlit_django.W003"
        assert "FLUSH_INTERVALL" in message.msg
        assert message.hint == "Did you mean 'FLUSH_INTERVAL'?"
        (message,) = outlit_messages(**BASE_OUTLIT, identify_user=False)
        assert message.hint == "Did you mean 'IDENTIFY_USER'?"
        (message,) = outlit_messages(**BASE_OUTLIT, COLOUR="blue")
        assert message.hint.startswith("Known keys: API_HOST, ENABLED")


class MiddlewareOrderChecks(SimpleTestCase):
    def test_outlit_before_authentication_is_reported(self):
        with override_settings(MIDDLEWARE=[SESSIONS, OURS, AUTH], OUTLIT=BASE_OUTLIT):
            (message,) = run_checks(tags=["outlit"])
        assert message.id == "outlit_django.W004"
        assert "after AuthenticationMiddleware" in message.hint

    def test_outlit_after_authentication_or_without_outlit_is_fine(self):
        for middleware in ([SESSIONS, AUTH, OURS], [SESSIONS, AUTH], []):
            with override_settings(MIDDLEWARE=middleware, OUTLIT=BASE_OUTLIT):
                assert run_checks(tags=["outlit"]) == [], middleware


class MissingAuthenticationChecks(SimpleTestCase):
    def test_the_default_identity_without_authentication_middleware_is_reported(self):
        for outlit in (BASE_OUTLIT, {**BASE_OUTLIT, "IDENTIFY_USER": True}):
            with override_settings(MIDDLEWARE=[SESSIONS, OURS], OUTLIT=outlit):
                (message,) = run_checks(tags=["outlit"])
            assert isinstance(message, Warning)
            assert message.id == "outlit_django.W005"
            assert "AuthenticationMiddleware" in message.msg
            assert "IDENTIFY_USER" in message.hint and "False" in message.hint

    def test_an_identity_of_its_own_or_none_needs_no_authentication_middleware(self):
        for identify_user in (False, "djtestproject.identity.organization_identity"):
            with override_settings(
                MIDDLEWARE=[OURS], OUTLIT={**BASE_OUTLIT, "IDENTIFY_USER": identify_user}
            ):
                assert run_checks(tags=["outlit"]) == [], identify_user

    def test_a_subclass_of_authentication_middleware_counts(self):
        subclass = "djtestproject.middleware.TokenAuthenticationMiddleware"
        with override_settings(MIDDLEWARE=[SESSIONS, subclass, OURS], OUTLIT=BASE_OUTLIT):
            assert run_checks(tags=["outlit"]) == []

    def test_a_middleware_path_that_does_not_import_is_left_to_django(self):
        with override_settings(MIDDLEWARE=["no_such.Middleware", OURS], OUTLIT=BASE_OUTLIT):
            assert ids(run_checks(tags=["outlit"])) == ["outlit_django.W005"]

    @override_settings(MIDDLEWARE=[SESSIONS, OURS], OUTLIT=BASE_OUTLIT)
    def test_manage_py_check_prints_it_and_it_can_be_silenced(self):
        err = StringIO()
        call_command("check", stdout=StringIO(), stderr=err)
        assert "outlit_django.W005" in err.getvalue()
        assert "SILENCED_SYSTEM_CHECKS" in err.getvalue()
        with override_settings(SILENCED_SYSTEM_CHECKS=["outlit_django.W005"]):
            err = StringIO()
            call_command("check", stdout=StringIO(), stderr=err)
        assert "W005" not in err.getvalue()


class ManagePyCheck(SimpleTestCase):
    """The checks are registered with Django's framework, as `manage.py check` runs them."""

    @override_settings(DEBUG=False, OUTLIT={})
    def test_manage_py_check_fails_on_a_missing_key(self):
        with pytest.raises(SystemCheckError, match=r"outlit_django\.E001"):
            call_command("check", stdout=StringIO(), stderr=StringIO())

    @override_settings(OUTLIT={**BASE_OUTLIT, "TIMEOUTT": 3})
    def test_manage_py_check_prints_warnings_with_their_hint(self):
        err = StringIO()
        call_command("check", "--tag", "outlit", stdout=StringIO(), stderr=err)
        assert "outlit_django.W003" in err.getvalue()
        assert "HINT: Did you mean 'TIMEOUT'?" in err.getvalue()
