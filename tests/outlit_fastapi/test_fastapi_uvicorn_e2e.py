"""The example app under a real uvicorn with two worker processes, sending to the local collector
over loopback: every request's event arrives exactly once, including those still queued when
uvicorn is stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from outlit._collector.server import Collector

EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "examples" / "fastapi_app"
REQUESTS = 60


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture
def uvicorn_app(
    collector: Collector, tmp_path: Path
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = _free_port()
    env = {
        **os.environ,
        "OUTLIT_PUBLIC_KEY": "pk_uvicorn_e2e",
        "OUTLIT_API_HOST": collector.url,
        # Far longer than the test: only the SIGTERM shutdown can deliver the events.
        "OUTLIT_FLUSH_INTERVAL": "300",
    }
    log = (tmp_path / "uvicorn.log").open("w+")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "app:app",
            "--app-dir",
            str(EXAMPLE_DIR),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "2",
            "--no-access-log",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log.seek(0) or log.read()
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "uvicorn did not start in 30 s"
            time.sleep(0.1)
        yield base, process
    finally:
        _stop(process)
        log.seek(0)
        print(log.read())  # shown by pytest when the test fails
        log.close()


@pytest.mark.slow
def test_every_event_arrives_exactly_once_across_sigterm(uvicorn_app, collector):
    base, process = uvicorn_app

    def export(n: int) -> int:
        # A new connection per request lets both workers accept some.
        response = httpx.post(
            f"{base}/reports/r{n}/export",
            params={"format": "csv"},
            headers={"Authorization": f"Bearer u{n % 7}:user{n % 7}@acme.com"},
            timeout=10,
        )
        return response.status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        assert set(pool.map(export, range(REQUESTS))) == {200}
    assert collector.stats.events_stored == 0, "still queued in the workers"

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0

    # Acknowledged events are stored before the collector answers: nothing left to wait for.
    events = collector.events(limit=10 * REQUESTS)
    ids = Counter(event["properties"]["reportId"] for event in events)
    assert ids == Counter({f"r{n}": 1 for n in range(REQUESTS)})
    assert len({event["uuid"] for event in events}) == REQUESTS
    assert collector.stats.duplicates == 0
    # Each worker delivered its own queue at SIGTERM (each served some of the requests).
    batches = [len(request.json()["events"]) for request in collector.requests]
    assert len(batches) >= 2 and sum(batches) == REQUESTS, batches
    for event in events:
        n = int(event["properties"]["reportId"][1:])
        assert event["userId"] == f"u{n % 7}" and event["email"] == f"user{n % 7}@acme.com"
        assert event["eventName"] == "report_exported"
