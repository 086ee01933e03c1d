"""``outlit dev``: the collector in the foreground, announced with the line to paste, and a clean
stop on SIGTERM or Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from outlit._cli import main

PUBLIC_KEY = "pk_test_dev_0123456789"


def _ctrl_c_as_in_a_terminal() -> None:
    # A test run started as a background job inherits SIGINT ignored, and so would the server:
    # give it the default handling a terminal gives, so that Ctrl-C means KeyboardInterrupt.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def dev_server() -> Iterator[tuple[subprocess.Popen[str], str, list[str]]]:
    """``python -m outlit dev`` on a free port; yields the process, its URL and what it printed."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OUTLIT_")}
    command = [sys.executable, "-m", "outlit", "dev", "--port", "0", "--memory", "--quiet"]
    # The with-block closes the pipes; the finally makes sure the server is gone first.
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
        preexec_fn=_ctrl_c_as_in_a_terminal,
    ) as process:
        try:
            assert process.stdout is not None
            lines: list[str] = []
            while not any("OUTLIT_API_HOST=" in line for line in lines):
                line = process.stdout.readline()
                assert line, "outlit dev ended before announcing its URL"
                lines.append(line.rstrip())
            found = re.search(r"OUTLIT_API_HOST=(\S+)", "\n".join(lines))
            assert found is not None
            yield process, found.group(1), lines
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_dev_serves_until_stopped(
    dev_server: tuple[subprocess.Popen[str], str, list[str]], stop_signal: signal.Signals
) -> None:
    process, url, lines = dev_server
    assert url.startswith("http://127.0.0.1:")
    assert f"  viewer:  {url}/" in lines
    argv = ["send", "-e", "signup", "--email", "a@b.co", "--public-key", PUBLIC_KEY]
    assert main([*argv, "--api-host", url]) == 0
    stored = httpx.get(f"{url}/api/events").json()["events"]
    assert [event["eventName"] for event in stored] == ["signup"]
    process.send_signal(stop_signal)
    assert process.wait(timeout=10) == 0


def test_dev_reports_a_port_in_use(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["dev", "--port", str(port), "--memory", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err
    assert "--port" in err


def test_a_port_in_use_leaves_no_database_behind(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # where `outlit dev` keeps .outlit/collector.sqlite3
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert main(["dev", "--port", str(busy.getsockname()[1]), "--quiet"]) == 1
    assert list(tmp_path.iterdir()) == []
