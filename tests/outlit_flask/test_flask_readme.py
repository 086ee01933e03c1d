"""The Flask section of README.md, run as written: the code blocks are read from the README
itself, so that an example there cannot stop working unnoticed.

The "Testing your app" blocks each start with a ``# <module>.py`` line: they are run as those
modules (the app first, then its test module, which imports it), and every ``test_*`` function
of a test module is called, as pytest would.
"""

from __future__ import annotations

import linecache
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from flask import Flask, appcontext_pushed

from outlit import InvalidEventError, MockTransport

README = Path(__file__).resolve().parents[2] / "README.md"

_HEADING = re.compile(r"#{1,6} ")
_MODULE_LINE = re.compile(r"# (\w+)\.py\b")


def _section_blocks(path: list[str]) -> list[str]:
    """The python code blocks directly under the README heading reached through ``path``
    (each heading looked for after the previous one), up to the next heading of any level."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = 0
    for heading in path:
        assert heading in lines[start:], f"README.md has no heading {heading!r} where expected"
        start = lines.index(heading, start) + 1
    blocks: list[str] = []
    language: str | None = None  # of the code block being read, None outside one
    current: list[str] = []
    for line in lines[start:]:
        if language is None:
            if line.startswith("```"):
                language, current = line[3:].strip(), []
            elif _HEADING.match(line):
                break
        elif line.startswith("```"):
            if language == "python":
                blocks.append("\n".join(current) + "\n")
            language = None
        else:
            current.append(line)
    return blocks


def _run_as_module(name: str, source: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    module = ModuleType(name)
    # Registered first, as an import does, so that a later block can import it.
    monkeypatch.setitem(sys.modules, name, module)
    filename = f"README.md ({name}.py)"
    # Lets a traceback through the example show its lines.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), module.__dict__)
    return module


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


def test_the_flask_sections_app_factory_takes_the_test_config(monkeypatch):
    (source,) = _section_blocks(["## Flask"])
    example = _run_as_module("readme_flask_app", source, monkeypatch)
    transport = MockTransport()

    with _clients_shut_down_afterwards():
        app = example.create_app({"OUTLIT_TRANSPORT": transport, "TESTING": True})
        assert app.extensions["outlit"].options.transport is transport
        # As "Who g.outlit tracks" says: no logged-in user, no identity, so the call refuses.
        with pytest.raises(InvalidEventError):
            app.test_client().post("/reports/42/export")
    assert transport.requests == []


def test_the_testing_your_app_example_passes(monkeypatch):
    blocks = _section_blocks(["## Flask", "### Testing your app"])
    named = [(_MODULE_LINE.match(block), block) for block in blocks]
    assert blocks and all(match for match, _ in named), (
        "each python block of README.md's Flask 'Testing your app' section starts with a "
        "'# <module>.py' line (the app module, then its test module)"
    )
    tests: list[Any] = []
    with _clients_shut_down_afterwards():
        for match, source in named:
            assert match is not None
            module = _run_as_module(match.group(1), source, monkeypatch)
            if module.__name__.startswith("test_"):
                tests += [
                    value
                    for name, value in vars(module).items()
                    if name.startswith("test_") and callable(value)
                ]
        assert tests, "the section's test module defines no test_* function"
        for test in tests:
            test()
