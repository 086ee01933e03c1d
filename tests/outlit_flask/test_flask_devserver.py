"""``flask run --debug``: the reloader's restart and Ctrl-C both deliver what the app queued."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from outlit._collector.server import Collector

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flask_app"
FLASK = Path(sys.executable).with_name("flask")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def test_reloader_restart_and_ctrl_c_flush_the_queue(tmp_path):
    watched = tmp_path / "watched.txt"
    watched.write_text("1")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with Collector(host="127.0.0.1", port=0, memory=True) as collector:
        env = {
            **os.environ,
            "OUTLIT_PUBLIC_KEY": "pk_test_devserver",
            "OUTLIT_API_HOST": collector.url,
            "FLASK_OUTLIT_FLUSH_INTERVAL": "60",
        }
        command = [
            str(FLASK), "--app", "app", "run", "--debug", "--port", str(port),
            "--extra-files", str(watched),
        ]  # fmt: skip
        log = (tmp_path / "flask.log").open("wb")
        # Its own process group, so that SIGINT reaches the reloader and the server as Ctrl-C does.
        server = subprocess.Popen(
            command,
            cwd=EXAMPLE,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # A test run started as a background job inherits SIGINT ignored: give the server
            # the default handling a terminal gives, so that Ctrl-C means KeyboardInterrupt.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:

            def answering() -> bool:
                try:
                    return httpx.get(base + "/", timeout=1.0).status_code == 200
                except httpx.TransportError:
                    return False

            _wait_until(answering, 20, "the dev server")
            with httpx.Client(base_url=base, timeout=5.0) as client:
                assert client.post("/login", data={"email": "ada@acme.example"}).status_code == 200
                for report_id in range(5):
                    assert client.post(f"/reports/{report_id}/export").status_code == 200
                assert collector.stats.events_stored == 0

                # Some filesystems keep modification times to the second, which the reloader reads.
                time.sleep(1.1)
                watched.write_text("2")
                _wait_until(lambda: collector.stats.events_stored == 6, 15, "the reload's flush")
                _wait_until(answering, 20, "the restarted server")

                for report_id in range(5, 8):
                    assert client.post(f"/reports/{report_id}/export").status_code == 200
            os.killpg(server.pid, signal.SIGINT)
            server.wait(20)
            # The reloader may exit before the server process it ran has finished its flush.
            _wait_until(lambda: collector.stats.events_stored == 9, 15, "the Ctrl-C flush")
        finally:
            # Whatever is left of the group (nothing, when the test passed).
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)
            log.close()

        events = collector.events(limit=100)
        exported = sorted(e["properties"]["report_id"] for e in events if e["type"] == "custom")
        assert exported == list(range(8))
        assert [e["type"] for e in events].count("identify") == 1
