"""A real run under waitress: examples/flask_app served on loopback, sending to a loopback
collector. The flush interval is 60 s, so every event that arrives was sent by the flush at
interpreter exit once the server stopped: each must arrive exactly once, as the right user.

waitress stops cleanly on Ctrl-C (SIGINT). It has no SIGTERM handler of its own, so plain
``waitress-serve`` dies on SIGTERM with its queue; ``serve_waitress.py`` in the example adds
one, and is stopped with SIGTERM here.
"""

from __future__ import annotations

import collections
import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from outlit._collector.server import Collector

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("waitress") is None,
        reason="waitress is not installed (pip install waitress): these tests serve the app with it",
    ),
]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flask_app"
EMAILS = ["ada@acme.example", "grace@acme.example", "alan@initech.example"]
EXPORTS_PER_USER = 10


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def _waitress_serve(port: int) -> list[str]:
    return [
        sys.executable, "-m", "waitress",
        f"--listen=127.0.0.1:{port}", "--threads=4",
        "--call", "app:create_app",
    ]  # fmt: skip


def _serve_waitress_script(port: int) -> list[str]:
    return [sys.executable, "serve_waitress.py", "--host", "127.0.0.1", "--port", str(port)]


def _default_sigint() -> None:
    # A test run started as a background job inherits SIGINT ignored: give the server the
    # default handling a terminal gives, so that SIGINT means KeyboardInterrupt as Ctrl-C does.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize(
    ("command", "stop_signal"),
    [
        pytest.param(_waitress_serve, signal.SIGINT, id="waitress-serve-ctrl-c"),
        pytest.param(_serve_waitress_script, signal.SIGTERM, id="serve_waitress.py-sigterm"),
    ],
)
def test_every_event_arrives_exactly_once_when_waitress_stops(command, stop_signal, tmp_path):
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with Collector(host="127.0.0.1", port=0, memory=True) as collector:
        env = {
            **os.environ,
            "OUTLIT_PUBLIC_KEY": "pk_test_waitress",
            "OUTLIT_API_HOST": collector.url,
            "FLASK_OUTLIT_FLUSH_INTERVAL": "60",
            "SECRET_KEY": "waitress-test",
        }
        log_path = tmp_path / "waitress.log"
        with log_path.open("wb") as log:
            # A process group of its own, so that a failed test can stop all of it.
            server = subprocess.Popen(
                command(port),
                cwd=EXAMPLE,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_default_sigint,
            )
        try:

            def answering() -> bool:
                if server.poll() is not None:
                    raise AssertionError(f"waitress exited early:\n{log_path.read_text()}")
                try:
                    return httpx.get(base + "/", timeout=1.0).status_code == 200
                except httpx.TransportError:
                    return False

            _wait_until(answering, 20, "waitress to answer")
            clients = [httpx.Client(base_url=base, timeout=10.0) for _ in EMAILS]
            try:

                def run(user: int) -> None:
                    client = clients[user]
                    response = client.post("/login", data={"email": EMAILS[user]})
                    assert response.status_code == 200, response.text
                    for i in range(EXPORTS_PER_USER):
                        response = client.post(f"/reports/{user * 1000 + i}/export")
                        assert response.status_code == 200, response.text

                with ThreadPoolExecutor(len(clients)) as pool:
                    for future in [pool.submit(run, user) for user in range(len(clients))]:
                        future.result()
            finally:
                for client in clients:
                    client.close()
            # Everything is still queued in the server: only its exit sends it.
            assert collector.stats.events_stored == 0

            server.send_signal(stop_signal)
            assert server.wait(30) == 0, log_path.read_text()
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)

        # The server has exited, so whatever it sent is stored: nothing more can arrive.
        expected = len(EMAILS) * (EXPORTS_PER_USER + 1)
        events = collector.events(limit=1000)
        assert collector.stats.duplicates == 0

    exported = [e for e in events if e.get("eventName") == "report_exported"]
    counts = collections.Counter(e["properties"]["report_id"] for e in exported)
    assert set(counts) == {
        user * 1000 + i for user in range(len(EMAILS)) for i in range(EXPORTS_PER_USER)
    }
    assert set(counts.values()) == {1}
    for event in exported:
        email = EMAILS[event["properties"]["report_id"] // 1000]
        assert (event["email"], event["customerDomain"]) == (email, email.rpartition("@")[2])
    identifies = [e for e in events if e["type"] == "identify"]
    assert sorted(e["email"] for e in identifies) == sorted(EMAILS)
    assert len(events) == expected
