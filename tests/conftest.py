"""Fixtures every test directory shares: README.md's code blocks, read from the README itself
and run as modules, so that an example there cannot stop working unnoticed."""

from __future__ import annotations

import linecache
import re
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"

_HEADING = re.compile(r"#{1,6} ")


def section_blocks(path: list[str], language: str = "python") -> list[str]:
    """The code blocks in ``language`` directly under the README heading reached through
    ``path`` (each heading looked for after the previous one), up to the next heading of any
    level."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = 0
    for heading in path:
        assert heading in lines[start:], f"README.md has no heading {heading!r} where expected"
        start = lines.index(heading, start) + 1
    blocks: list[str] = []
    reading: str | None = None  # the language of the code block being read, None outside one
    current: list[str] = []
    for line in lines[start:]:
        if reading is None:
            if line.startswith("```"):
                reading, current = line[3:].strip(), []
            elif _HEADING.match(line):
                break
        elif line.startswith("```"):
            if reading == language:
                blocks.append("\n".join(current) + "\n")
            reading = None
        else:
            current.append(line)
    return blocks


@pytest.fixture
def readme_blocks() -> Callable[..., list[str]]:
    """``readme_blocks(["## Flask", "### Testing your app"])``: that section's python blocks;
    ``readme_blocks(path, "bash")`` its bash blocks."""
    return section_blocks


@pytest.fixture
def run_readme_block(
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., ModuleType]:
    """``run_readme_block(name, source, **names)``: runs a README block as the module ``name``,
    with ``names`` defined first (what the README leaves to the reader, such as an
    ``outlit`` client in the API reference), and returns the module."""

    def run(name: str, source: str, **names: Any) -> ModuleType:
        module = ModuleType(name)
        module.__dict__.update(names)
        # Registered first, as an import does, so that a later block can import it.
        monkeypatch.setitem(sys.modules, name, module)
        filename = f"README.md ({name}.py)"
        # Lets a traceback through the example show its lines.
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        exec(compile(source, filename, "exec"), module.__dict__)
        return module

    return run


@pytest.fixture
def type_errors(tmp_path: Path) -> Callable[[str], dict[int, str]]:
    """``type_errors(source)``: what ``mypy --strict`` reports for ``source``, a user's program,
    as {line number: message}."""
    api = pytest.importorskip("mypy.api", reason="mypy is in the dev extra")

    def check(source: str) -> dict[int, str]:
        program = tmp_path / "user_program.py"
        program.write_text(source, encoding="utf-8")
        cache = str(tmp_path / "mypy_cache")
        out, err, _status = api.run(
            ["--strict", "--no-incremental", "--cache-dir", cache, str(program)]
        )
        assert not err, err
        found: dict[int, str] = {}
        for line in out.splitlines():
            where, marker, message = line.partition(": error: ")
            if marker:
                found[int(where.rsplit(":", 1)[1])] = message
        return found

    return check
