"""The example app and the benchmark apps do what their documentation says."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from outlit import MockTransport

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.syspath_prepend(str(REPO / "examples" / "flask_app"))
    sys.modules.pop("app", None)
    try:
        yield importlib.import_module("app")
    finally:
        sys.modules.pop("app", None)


def test_example_app_tracks_logins_exports_and_billing(example, public_key):
    transport = MockTransport()
    app = example.create_app(
        {"OUTLIT_PUBLIC_KEY": public_key, "OUTLIT_TRANSPORT": transport, "TESTING": True}
    )
    try:
        client = app.test_client()
        assert client.post("/reports/1/export").status_code == 401  # login required
        assert client.post("/login", data={"email": "nobody@example.com"}).status_code == 404
        assert client.post("/login", data={"email": "alan@initech.example"}).status_code == 200
        assert client.post("/reports/42/export", data={"format": "csv"}).status_code == 200
        assert client.post("/onboarding/done").status_code == 200
        client.post("/webhooks/billing", json={"domain": "initech.example", "plan": "pro"})
        with app.app_context():
            assert example.outlit.flush(2.0)
    finally:
        app.extensions["outlit"].shutdown(0.5)

    identify, exported, activated, paid = transport.events
    assert (identify["type"], identify["email"], identify["userId"]) == (
        "identify",
        "alan@initech.example",
        "3",
    )
    assert identify["customerDomain"] == "initech.example"
    assert exported["eventName"] == "report_exported"
    assert exported["properties"] == {"report_id": 42, "format": "csv"}
    assert exported["customerDomain"] == "initech.example"
    assert activated["stage"] == "activated"
    assert activated["properties"]["__email"] == "alan@initech.example"
    assert (paid["status"], paid["customerDomain"]) == ("paid", "initech.example")


@pytest.fixture
def hello(monkeypatch: pytest.MonkeyPatch, collector: Any) -> Iterator[ModuleType]:
    monkeypatch.setenv("OUTLIT_API_HOST", collector.url)
    monkeypatch.setenv("OUTLIT_PUBLIC_KEY", "pk_bench_test")
    monkeypatch.syspath_prepend(str(REPO))
    sys.modules.pop("benchmarks.apps.flask_hello", None)
    module = importlib.import_module("benchmarks.apps.flask_hello")
    try:
        yield module
    finally:
        module.app_outlit.extensions["outlit"].shutdown(0.5)
        sys.modules.pop("benchmarks.apps.flask_hello", None)


def test_benchmark_apps_answer_alike_and_only_one_tracks(hello, collector):
    plain = hello.app_plain.test_client().get("/")
    tracked = hello.app_outlit.test_client().get("/")
    reads_g = hello.app_g_attribute.test_client().get("/")

    assert plain.data == tracked.data == reads_g.data == b"Hello, World!"
    assert "outlit" not in hello.app_plain.extensions
    assert "outlit" not in hello.app_g_attribute.extensions
    with hello.app_outlit.app_context():
        assert hello.app_outlit.extensions["outlit"].flush(5.0)
    (event,) = collector.wait_for_events(1)
    assert event["eventName"] == "hello_viewed"
    assert (event["userId"], event["customerDomain"]) == ("bench-user", "bench.example")
