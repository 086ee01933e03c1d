"""What a type checker says of code that uses the extension object: its ``track`` and
``identify`` take the client's keywords, so a misspelt one is caught before it runs."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

api = pytest.importorskip("mypy.api", reason="mypy is in the dev extra")

PROGRAM = textwrap.dedent(
    """
    from flask import Flask

    from outlit import MockTransport
    from outlit_flask import Outlit

    outlit = Outlit()
    app = Flask(__name__)
    app.config.update(OUTLIT_PUBLIC_KEY="pk_test", OUTLIT_TRANSPORT=MockTransport())
    outlit.init_app(app)

    with app.app_context():
        outlit.track(event_name="report_exported", email="jane@acme.com", user_id=42)
        outlit.identify(email="jane@acme.com", user_id=None, traits={"plan": "pro"})
        outlit.track(evnt_name="report_exported", email="jane@acme.com")
        outlit.identify(emial="jane@acme.com")
    """
)


def test_the_extensions_tracking_methods_check_their_keywords(tmp_path: Path) -> None:
    program = tmp_path / "flask_user_code.py"
    program.write_text(PROGRAM, encoding="utf-8")
    out, err, _status = api.run(
        ["--strict", "--no-incremental", "--cache-dir", str(tmp_path / "cache"), str(program)]
    )
    assert not err, err
    flagged = {
        int(line.split(": error: ")[0].rsplit(":", 1)[1])
        for line in out.splitlines()
        if ": error: " in line
    }
    assert flagged == {15, 16}, out  # the two misspelt calls, nothing else
