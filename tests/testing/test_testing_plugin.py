"""``outlit.pytest_plugin``: the ``outlit_events`` and ``outlit_collector`` fixtures, run inside
pytest sessions of their own (pytester), as a user's test suite would use them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from importlib import metadata
from typing import Any

import pytest

# Enabled here rather than in a conftest: pytest refuses pytest_plugins in a conftest that is
# not at the rootdir, and this directory's tests also run as part of the whole suite.
pytest_plugins = ["pytester"]

# The inner sessions load the plugin with -p and without entry-point autoloading, so they behave
# the same whether or not the installed distribution already declares the pytest11 entry point
# (loading it both ways would register it twice).
PLUGIN_ARGS = ("-p", "outlit.pytest_plugin", "-p", "no:cacheprovider")


@pytest.fixture(autouse=True)
def no_autoload(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.delenv("OUTLIT_PUBLIC_KEY", raising=False)
    monkeypatch.delenv("OUTLIT_API_HOST", raising=False)


def test_loading_the_plugin_imports_nothing_heavy() -> None:
    code = textwrap.dedent(
        """
        import sys
        import pytest
        before = set(sys.modules)
        import outlit.pytest_plugin
        print("\\n".join(sorted(set(sys.modules) - before)))
        """
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    heavy = {
        "httpx",
        "blinker",
        "sqlite3",
        "http.server",
        "outlit.testing",
        "outlit._collector",
        "outlit._worker",
        "outlit._transport",
        "django",
        "flask",
        "fastapi",
        "starlette",
    }
    assert "outlit.pytest_plugin" in loaded
    assert heavy.isdisjoint(loaded), sorted(heavy & set(loaded))


def test_outlit_events_records_clients_and_isolates_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_app="""
        from outlit import MockTransport, Outlit
        from outlit.testing import assert_tracked

        HOST = "http://127.0.0.1:9"  # nothing listens: nothing may try to send there
        APP_CLIENT = Outlit(public_key="pk_test_app", api_host=HOST)  # made at import

        def signup(email):
            APP_CLIENT.track(event_name="signup", email=email)

        def test_a_client_made_before_the_test_is_recorded(outlit_events):
            signup("jane@acme.com")
            assert_tracked(outlit_events, "signup", email="jane@acme.com")

        def test_each_test_sees_only_its_own_events(outlit_events):
            APP_CLIENT.track(event_name="other", email="sam@acme.com")
            assert [e["eventName"] for e in outlit_events] == ["other"]

        def test_a_client_made_inside_the_test_is_recorded(outlit_events):
            with Outlit(public_key="pk_test_inner", api_host=HOST) as client:
                client.user.activate(email="jane@acme.com")
            assert outlit_events.of_type("stage")[0]["stage"] == "activated"

        def test_a_client_with_its_own_transport_keeps_it(outlit_events):
            mock = MockTransport()
            with Outlit(public_key="pk_test_mock", transport=mock) as client:
                client.track(event_name="mocked", email="jane@acme.com")
            assert len(outlit_events) == 0
            assert [e["eventName"] for e in mock.events] == ["mocked"]

        def refused(name):
            # An event the service would refuse (a negative timestamp), queued as a
            # hand-built event would be: track() refuses one at the call.
            return {"type": "custom", "timestamp": -1, "url": "server://jane@acme.com",
                    "path": "/", "eventName": name, "email": "jane@acme.com"}

        def test_a_refused_call_fails_the_test(outlit_events):
            APP_CLIENT._enqueue(refused("signup"))
            assert len(outlit_events) == 0

        def test_an_unread_refused_call_errors_at_teardown(outlit_events):
            APP_CLIENT._enqueue(refused("late"))

        def test_without_the_fixture_nothing_is_patched():
            assert not hasattr(Outlit.__init__, "__wrapped__")
        """
    )
    result = pytester.runpytest(*PLUGIN_ARGS)
    result.assert_outcomes(passed=6, failed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*test_a_refused_call_fails_the_test*",
            "*ContractError: Outlit's ingest API would not store everything sent (1 problem)*",
            "*timestamp: must be a non-negative integer*",
        ]
    )
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_an_unread_refused_call*"])


def test_outlit_collector_runs_for_one_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_collector="""
        import socket

        from outlit import Outlit

        seen = {}

        def test_events_arrive_at_the_collector(outlit_collector):
            seen["port"] = outlit_collector.port
            with Outlit(public_key="pk_test", api_host=outlit_collector.url) as client:
                client.customer.paid(customer_domain="acme.com")
            (event,) = outlit_collector.wait_for_events(1)
            assert event["status"] == "paid"

        def test_the_collector_is_stopped_afterwards():
            with socket.socket() as sock:
                assert sock.connect_ex(("127.0.0.1", seen["port"])) != 0

        def test_events_survive_an_outage(outlit_collector):  # the docs' example
            outlit_collector.script(503, 503)
            with Outlit(public_key="pk_test", api_host=outlit_collector.url) as client:
                client.track(event_name="signup", email="jane@acme.com")
            (event,) = outlit_collector.wait_for_events(1)
            assert event["eventName"] == "signup"
            assert [r.status for r in outlit_collector.requests] == [503, 503, 200]
        """
    )
    pytester.runpytest(*PLUGIN_ARGS).assert_outcomes(passed=3)


def test_clients_sending_to_the_tests_collector_are_not_recorded(pytester: pytest.Pytester) -> None:
    # The README's advice (outlit_events autouse in conftest.py) beside a test that asks for
    # outlit_collector: a client pointed at that collector sends to it; any other is recorded.
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture(autouse=True)
        def _record_outlit(outlit_events):
            return outlit_events
        """
    )
    pytester.makepyfile(
        test_both="""
        from outlit import Outlit
        from outlit._collector import Collector

        def test_the_collector_gets_its_clients_events(outlit_collector, outlit_events):
            with Outlit(public_key="pk_test", api_host=outlit_collector.url + "/") as sent:
                sent.track(event_name="signup", email="jane@acme.com")
            with Outlit(public_key="pk_test", api_host="http://127.0.0.1:9") as recorded:
                recorded.track(event_name="login", email="jane@acme.com")
            (event,) = outlit_collector.wait_for_events(1)
            assert event["eventName"] == "signup"
            assert [e["eventName"] for e in outlit_events] == ["login"]

        def test_a_collector_the_test_starts_itself_gets_its_clients_events(outlit_events):
            # As README, "See your events locally", "In tests": under the autouse fixture too.
            with Collector(host="127.0.0.1", port=0, memory=True) as own:
                with Outlit(public_key="pk_test", api_host=own.url) as client:
                    client.track(event_name="signup", email="jane@acme.com")
                (event,) = own.wait_for_events(1)
                assert event["eventName"] == "signup"
            assert list(outlit_events) == []

        def test_once_that_collector_stopped_clients_for_its_url_are_recorded(outlit_events):
            own = Collector(host="127.0.0.1", port=0, memory=True)
            with own:
                url = own.url
            with Outlit(public_key="pk_test", api_host=url) as client:
                client.track(event_name="login", email="jane@acme.com")
            assert [e["eventName"] for e in outlit_events] == ["login"]
        """
    )
    pytester.runpytest(*PLUGIN_ARGS).assert_outcomes(passed=3)


def test_a_projects_own_outlit_collector_fixture_is_left_alone(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_own="""
        import pytest
        from outlit import Outlit

        @pytest.fixture
        def outlit_collector():  # a project's fixture of the same name, without a url
            return {"name": "not outlit's"}

        def test_recording_still_works(outlit_collector, outlit_events):
            with Outlit(public_key="pk_test", api_host="http://127.0.0.1:9") as client:
                client.track(event_name="signup", email="jane@acme.com")
            assert [e["eventName"] for e in outlit_events] == ["signup"]
        """
    )
    pytester.runpytest(*PLUGIN_ARGS).assert_outcomes(passed=1)


# The examples of the README's testing section, run as a user would: Django, Flask and FastAPI apps whose
# adapters create their own clients. A separate process, since Django is configured once per
# process and the surrounding session may already have configured it.
DJANGO_CONFTEST = """
import django
from django.conf import settings
from django.core.management import call_command

settings.configure(
    SECRET_KEY="tests-only",
    ALLOWED_HOSTS=["testserver"],
    ROOT_URLCONF="urls",
    INSTALLED_APPS=[
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.sessions",
        "outlit_django",
    ],
    MIDDLEWARE=[
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "outlit_django.middleware.OutlitMiddleware",
    ],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
    DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    OUTLIT={"PUBLIC_KEY": "pk_test", "API_HOST": "http://127.0.0.1:9"},
    USE_TZ=True,
)
django.setup()
call_command("migrate", run_syncdb=True, verbosity=0)
"""

DJANGO_URLS = """
from django.http import JsonResponse
from django.urls import path


def export_report(request):
    request.outlit.track(event_name="report_exported", properties={"format": request.POST["format"]})
    return JsonResponse({"ok": True})


urlpatterns = [path("reports/export", export_report)]
"""

FRAMEWORK_TESTS = """
from django.test import Client
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from flask import Flask, g

import outlit_fastapi
import outlit_flask
from outlit.testing import assert_billing, assert_tracked


def test_django_view(outlit_events):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("jane", email="jane@acme.com", password="x")
    client = Client()
    client.force_login(user)
    response = client.post("/reports/export", {"format": "pdf"})
    assert response.status_code == 200
    # The request's user supplied the identity the view left out.
    assert_tracked(
        outlit_events, "report_exported", email="jane@acme.com", properties={"format": "pdf"}
    )


def create_flask_app():
    app = Flask(__name__)
    app.config["OUTLIT_PUBLIC_KEY"] = "pk_test"
    app.config["OUTLIT_API_HOST"] = "http://127.0.0.1:9"
    outlit_flask.Outlit(app)

    @app.post("/export")
    def export():
        g.outlit.track(event_name="report_exported", email="jane@acme.com")
        return {"ok": True}

    return app


def test_flask_route(outlit_events):
    response = create_flask_app().test_client().post("/export")
    assert response.status_code == 200
    assert_tracked(outlit_events, "report_exported", email="jane@acme.com")


outlit = outlit_fastapi.Outlit(public_key="pk_test", api_host="http://127.0.0.1:9")
app = FastAPI(lifespan=outlit.lifespan)


@app.post("/export")
async def export(tracker=Depends(outlit)):
    tracker.track(event_name="report_exported", email="jane@acme.com")
    tracker.customer.paid(customer_domain="acme.com", properties={"plan": "pro"})
    return {"ok": True}


def test_fastapi_endpoint(outlit_events):
    with TestClient(app) as http:
        assert http.post("/export").status_code == 200
    assert_tracked(outlit_events, "report_exported", email="jane@acme.com")
    assert_billing(outlit_events, "paid", customer_domain="acme.com", properties={"plan": "pro"})


def test_fastapi_endpoint_again(outlit_events):
    # The lifespan shut the first client down; the adapter makes a new one, recorded as well.
    with TestClient(app) as http:
        assert http.post("/export").status_code == 200
    assert len(outlit_events) == 2
"""


@pytest.mark.slow
def test_framework_examples_record_their_adapters_clients(pytester: pytest.Pytester) -> None:
    pytest.importorskip(
        "outlit_django", reason="outlit_django needs its framework, from the outlit[django] extra"
    )
    pytest.importorskip(
        "outlit_flask", reason="outlit_flask needs its framework, from the outlit[flask] extra"
    )
    pytest.importorskip(
        "outlit_fastapi",
        reason="outlit_fastapi needs its framework, from the outlit[fastapi] extra",
    )
    pytester.makeconftest(DJANGO_CONFTEST)
    pytester.makepyfile(urls=DJANGO_URLS, test_frameworks=FRAMEWORK_TESTS)
    result = pytester.runpytest_subprocess(*PLUGIN_ARGS, "-W", "error::DeprecationWarning")
    result.assert_outcomes(passed=4)


# Run after the README's own test, in the same class (so under the same settings, and the same
# process-wide client): one test that leaves an event queued, then the README's test again,
# which must find only its own events in the transport.
DJANGO_TESTCASE_AFTER_ANOTHER = """


class ExportTestsAfterAnotherTest(ExportTests):
    def test_a_upgrade_responds(self):  # runs first; tracks, never flushes
        outlit.customer.paid(customer_domain="acme.com")

    def test_export_is_tracked(self):
        super().test_export_is_tracked()
        assert [event["type"] for event in transport.events] == ["identify", "custom"]
"""


@pytest.mark.slow
def test_the_django_testcase_example_sees_only_its_own_events(
    pytester: pytest.Pytester, readme_blocks: Any
) -> None:
    pytest.importorskip(
        "outlit_django", reason="outlit_django needs its framework, from the outlit[django] extra"
    )
    (source,) = readme_blocks(["## Django", "### Testing"])
    pytester.makeconftest(DJANGO_CONFTEST)
    pytester.makepyfile(
        urls=DJANGO_URLS, test_readme_testcase=source + DJANGO_TESTCASE_AFTER_ANOTHER
    )
    result = pytester.runpytest_subprocess(*PLUGIN_ARGS)
    result.assert_outcomes(passed=3)


def test_the_entry_point_names_this_plugin() -> None:
    entry_points = [ep for ep in metadata.entry_points(group="pytest11") if ep.name == "outlit"]
    if not entry_points:
        pytest.skip("the installed outlit does not declare its pytest11 entry point (yet)")
    assert [ep.value for ep in entry_points] == ["outlit.pytest_plugin"]
