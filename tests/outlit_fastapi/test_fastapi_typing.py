"""What a type checker says of code that uses ``outlit_fastapi.Outlit`` outside requests: its
methods take what the client's take (None for "not given", int ids), and ``bind`` checks its
identity as the client's does."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

api = pytest.importorskip("mypy.api", reason="mypy is in the dev extra")

PROGRAM = textwrap.dedent(
    """
    from outlit import MockTransport
    from outlit_fastapi import Outlit

    outlit = Outlit(public_key="pk_test", transport=MockTransport())

    def nightly(email: str | None) -> None:
        outlit.track(event_name="report_sent", email=email, customer_id=7)
        outlit.identify(email=email, user_id=42)
        outlit.bind({"customer_id": "c1"}).track(event_name="report_sent")
        outlit.bind(("customer_id", "c1"))
    """
)


def test_methods_outside_requests_type_check_as_the_clients(tmp_path: Path) -> None:
    program = tmp_path / "fastapi_user_code.py"
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
    assert flagged == {11}, out  # only the tuple given to bind()
