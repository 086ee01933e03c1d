"""The Flask section of README.md, run as written: the code blocks are read from the README
itself (see tests/conftest.py), so that an example there cannot stop working unnoticed. The
identity loader and signals blocks run on the section's own apps, the signals one against a
local collector that answers slowly and refuses the key.

The "Testing your app" blocks each start with a ``# <module>.py`` line: they are run as those
modules (the app first, then its test module, which imports it), and every ``test_*`` function
of a test module is called, as pytest would.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask, appcontext_pushed, g
from flask_login import FlaskLoginClient

from outlit import InvalidEventError, MockTransport
from outlit._collector import Reply
from outlit_flask import signals

_MODULE_LINE = re.compile(r"# (\w+)\.py\b")


@contextmanager
def _clients_shut_down_afterwards() -> Iterator[None]:
    """Shut down the client of every app that pushed a context meanwhile: the examples make
    apps of their own and leave them running, as a user's test module would."""
    apps: list[Flask] = []

    def remember(app: Flask, **extra: Any) -> None:
        if app not in apps:
            apps.append(app)

    try:
        with appcontext_pushed.connected_to(remember):
            yield
    finally:
        for app in apps:
            client = app.extensions.get("outlit")
            if client is not None:
                client.shutdown(timeout=0.5)


def test_the_flask_sections_app_factory_takes_the_test_config(readme_blocks, run_readme_block):
    (source,) = readme_blocks(["## Flask"])
    example = run_readme_block("readme_flask_app", source)
    transport = MockTransport()

    with _clients_shut_down_afterwards():
        app = example.create_app({"OUTLIT_TRANSPORT": transport, "TESTING": True})
        assert app.extensions["outlit"].options.transport is transport
        # As "Who g.outlit tracks" says: no logged-in user, no identity, so the call refuses.
        with pytest.raises(InvalidEventError):
            app.test_client().post("/reports/42/export")
    assert transport.requests == []


def test_the_testing_your_app_example_passes(readme_blocks, run_readme_block):
    blocks = readme_blocks(["## Flask", "### Testing your app"])
    named = [(_MODULE_LINE.match(block), block) for block in blocks]
    assert blocks and all(match for match, _ in named), (
        "each python block of README.md's Flask 'Testing your app' section starts with a "
        "'# <module>.py' line (the app module, then its test module)"
    )
    tests: list[Any] = []
    with _clients_shut_down_afterwards():
        for match, source in named:
            assert match is not None
            module = run_readme_block(match.group(1), source)
            if module.__name__.startswith("test_"):
                tests += [
                    value
                    for name, value in vars(module).items()
                    if name.startswith("test_") and callable(value)
                ]
        assert tests, "the section's test module defines no test_* function"
        for test in tests:
            test()


def test_the_identity_loader_adds_the_team_and_a_device_for_visitors(
    readme_blocks, run_readme_block
):
    # The loader on the "Testing your app" app, whose users get the team the loader reads.
    app_source = readme_blocks(["## Flask", "### Testing your app"])[0]
    myapp = run_readme_block("readme_flask_loader_app", app_source)
    (loader,) = readme_blocks(["## Flask", "### Who `g.outlit` tracks"])
    run_readme_block("readme_flask_loader", loader, outlit=myapp.outlit)
    myapp.USERS["7"].team_id = "team_3"
    transport = MockTransport()

    with _clients_shut_down_afterwards():
        app = myapp.create_app(
            {"OUTLIT_TRANSPORT": transport, "SECRET_KEY": "test", "TESTING": True}
        )

        @app.post("/pricing")
        def pricing() -> str:  # open to visitors
            g.outlit.track(event_name="pricing_viewed")
            return "ok"

        app.test_client_class = FlaskLoginClient
        assert app.test_client(user=myapp.USERS["7"]).post("/reports/42/export").status_code == 200
        visitor = app.test_client()
        visitor.set_cookie("device_id", "dev_9")
        assert visitor.post("/pricing").status_code == 200
        with app.app_context():
            assert myapp.outlit.flush()

    exported, viewed = transport.events
    assert (exported["userId"], exported["email"], exported["customerId"]) == (
        "7",
        "jane@acme.com",
        "team_3",
    )
    assert viewed["fingerprint"] == "dev_9" and "userId" not in viewed


def test_the_signals_example_counts_drops_and_warns_when_behind(
    readme_blocks, run_readme_block, collector, caplog
):
    (factory,) = readme_blocks(["## Flask"])
    example = run_readme_block("readme_flask_signals_app", factory)
    (source,) = readme_blocks(["## Flask", "### Signals"])
    counted: list[tuple[Any, ...]] = []
    statsd = SimpleNamespace(incr=lambda *args, **kwargs: counted.append((*args, kwargs)))

    with _clients_shut_down_afterwards():
        app = example.create_app(
            {
                "OUTLIT_PUBLIC_KEY": "pk_readme",
                "OUTLIT_API_HOST": collector.url,
                "OUTLIT_FLUSH_ON_TEARDOWN": True,
                "OUTLIT_TEARDOWN_FLUSH_TIMEOUT": 0.1,
            }
        )
        module = run_readme_block("readme_flask_signals", source, app=app, statsd=statsd)
        try:
            # The service is slow to answer, then refuses the key: the teardown flush runs out
            # of time, and the event is dropped afterwards.
            collector.script(Reply(401, delay=0.5))
            with app.test_request_context():
                g.outlit.track(event_name="report_exported", email="jane@acme.com")
            deadline = time.monotonic() + 5
            while not counted and time.monotonic() < deadline:
                time.sleep(0.02)
        finally:
            signals.events_dropped.disconnect(module.count_drops)
            signals.teardown_flushed.disconnect(module.warn_when_behind)

    assert counted == [("outlit.dropped", 1, {"tags": ["reason:invalid_key"]})]
    assert "outlit: 1 events still queued" in caplog.text
