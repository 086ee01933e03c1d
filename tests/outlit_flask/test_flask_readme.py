"""The Flask section of README.md, run as written: the code blocks are read from the README
itself, so that an example there cannot stop working unnoticed.

The "Testing your app" blocks each start with a ``# <module>.py`` line: they are run as those
modules (the app first, then its test module, which imports it), and every ``test_*`` function
of a test module is called, as pytest would.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask, appcontext_pushed

from outlit import InvalidEventError, MockTransport

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
