"""README.md's Django examples, run as written (read from the README: see tests/conftest.py)
in this directory's configured Django project.

Not run here: the asgi.py block (tests/outlit_django/test_django_asgi.py serves the same
wiring under uvicorn) and the Testing block (tests/testing/test_testing_plugin.py runs the same
test in a project of its own, since Django is configured once per process).
"""

from __future__ import annotations

import types
from typing import Any

from django.contrib.auth import get_user_model
from django.http import HttpResponse
from django.test import RequestFactory

from outlit import RetryPolicy, signals
from outlit_django import outlit
from outlit_django.middleware import OutlitMiddleware


def serve(view: Any, user: Any, **attributes: Any) -> None:
    """Run ``view`` behind OutlitMiddleware for a POST signed in as ``user``."""
    request = RequestFactory().post("/reports/export")
    request.user = user
    for name, value in attributes.items():
        setattr(request, name, value)
    OutlitMiddleware(lambda request: view(request) or HttpResponse())(request)


def make_user(name: str) -> Any:
    return get_user_model().objects.create_user(name, f"{name}@acme.com", "pw")


def test_the_opening_example_fills_in_the_signed_in_user(
    configure_outlit, readme_blocks, run_readme_block
):
    transport = configure_outlit()
    (source,) = readme_blocks(["## Django"])
    # Importing the block runs its last line: a billing call outside any request.
    module = run_readme_block("readme_django", source)
    assert module.MIDDLEWARE[-1] == "outlit_django.middleware.OutlitMiddleware"

    user = make_user("jane")
    serve(module.export_report, user)
    assert outlit.flush(timeout=5)

    paid, exported = transport.events
    assert (paid["type"], paid["status"], paid["customerDomain"]) == ("billing", "paid", "acme.com")
    assert exported["eventName"] == "report_exported"
    assert (exported["userId"], exported["email"]) == (str(user.pk), "jane@acme.com")
    assert exported["properties"] == {"format": "pdf"}


def test_the_identity_function_adds_the_requests_organization(
    configure_outlit, readme_blocks, run_readme_block
):
    (source,) = readme_blocks(["## Django", "### Which identity a call gets"])
    module = run_readme_block("readme_django_identity", source)
    transport = configure_outlit(IDENTIFY_USER="readme_django_identity.identity")
    user = make_user("joe")

    def view(request: Any) -> None:
        request.outlit.track(event_name="report_exported")
        if getattr(request, "organization", None) is not None:
            # As the README goes on: a billing call is sent for the organisation.
            request.outlit.customer.paid(properties={"plan": "pro"})

    serve(view, user, organization=types.SimpleNamespace(pk=7))
    serve(view, user)  # no organization on this request: the user alone
    assert outlit.flush(timeout=5)

    with_org, paid, without = transport.events
    assert (with_org["userId"], with_org["customerId"]) == (str(user.pk), "7")
    assert (paid["status"], paid["customerId"], paid["properties"]) == (
        "paid",
        "7",
        {"plan": "pro"},
    )
    assert "userId" not in paid and "email" not in paid  # billing calls take the customer only
    assert "customerId" not in without and without["email"] == "joe@acme.com"
    assert module.identity.__module__ == "readme_django_identity"


def test_the_metrics_app_counts_deliveries_failures_and_drops(
    configure_outlit, collector, readme_blocks, run_readme_block, tmp_path
):
    (source,) = readme_blocks(["## Django", "### Counting deliveries, failures and drops"])
    counted: list[tuple[Any, ...]] = []
    statsd = types.SimpleNamespace(incr=lambda *args: counted.append(args))
    module = run_readme_block("readme_django_metrics", source, statsd=statsd)
    app_module = types.SimpleNamespace(__path__=[str(tmp_path)])
    module.MetricsConfig("metrics", app_module).ready()
    try:
        configure_outlit(
            API_HOST=collector.url,
            TRANSPORT=None,
            RETRY=RetryPolicy(initial_backoff=0.01, max_backoff=0.05),
        )
        collector.script(503)  # one failed request, retried
        outlit.track(event_name="report_exported", email="jane@acme.com")
        outlit.track(event_name="report_exported", email="joe@acme.com")
        assert outlit.flush(timeout=5)
        collector.script(401)  # the key refused: what is queued is dropped
        outlit.track(event_name="report_exported", email="ann@acme.com")
        outlit.flush(timeout=5)
    finally:
        signals.batch_delivered.disconnect(module.count_delivered)
        signals.batch_failed.disconnect(module.count_failed)
        signals.events_dropped.disconnect(module.count_dropped)

    assert counted == [
        ("outlit.failed_requests",),
        ("outlit.delivered", 2),
        ("outlit.failed_requests",),
        ("outlit.dropped.invalid_key", 1),
    ]
