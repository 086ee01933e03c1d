"""A real run: examples/flask_app served by gunicorn (2 workers) sending to a loopback collector.

Every tracked request's event must arrive exactly once, through a ``kill -HUP`` (new workers,
old ones stop gracefully) under load and a SIGTERM of the whole server. The flush interval is
60 s, so what arrives was sent by the exit-time flush of each stopping worker.
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
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from outlit._collector.server import Collector

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "flask_app"
GUNICORN = Path(sys.executable).with_name("gunicorn")
PUBLIC_KEY = "pk_test_gunicorn"
EMAILS = ["ada@acme.example", "grace@acme.example", "alan@initech.example"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: the fields start after the last ')'.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(entry.name))
    return found


def _wait_for(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _wait_for_workers(master: int, old: set[int]) -> set[int]:
    """The master's two workers, once none of them is one of ``old``."""

    def ready() -> set[int] | None:
        workers = _children(master)
        return workers if len(workers) == 2 and not workers & old else None

    found: set[int] = _wait_for(ready, 30, "two new gunicorn workers")
    return found


@contextmanager
def _gunicorn(
    api_host: str, args: list[str], log: Path
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = _free_port()
    env = {
        **os.environ,
        "OUTLIT_PUBLIC_KEY": PUBLIC_KEY,
        "OUTLIT_API_HOST": api_host,
        "FLASK_OUTLIT_FLUSH_INTERVAL": "60",
        "SECRET_KEY": "gunicorn-test",
    }
    # Gunicorn 25+ opens a control socket at one shared default path: another gunicorn running
    # at the same time would take it over. Older versions ignore the unknown setting.
    config = log.with_name("gunicorn.conf.py")
    config.write_text("control_socket_disable = True\n")
    command = [
        str(GUNICORN),
        "--config", str(config),
        "--workers", "2",
        "--bind", f"127.0.0.1:{port}",
        "--chdir", str(EXAMPLE),
        "--graceful-timeout", "15",
        *args,
        "app:create_app()",
    ]  # fmt: skip
    with log.open("wb") as output:
        # A process group of its own, so that a failed test can stop the workers too.
        process = subprocess.Popen(
            command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:

        def answering() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"gunicorn exited early:\n{log.read_text()}")
            try:
                return httpx.get(base + "/", timeout=1.0).status_code == 200
            except httpx.TransportError:
                return False

        _wait_for(answering, 20, "gunicorn to answer")
        yield process, base
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def _export(client: httpx.Client, report_id: int) -> None:
    response = client.post(f"/reports/{report_id}/export", data={"format": "csv"})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "args",
    [
        pytest.param([], id="sync"),
        pytest.param(["--preload"], id="sync-preload"),
        pytest.param(
            ["--preload", "--worker-class", "gthread", "--threads", "4"], id="gthread-preload"
        ),
        pytest.param(
            ["--worker-class", "gevent"],
            id="gevent",
            marks=pytest.mark.skipif(
                importlib.util.find_spec("gevent") is None,
                reason="gevent is not installed: the gevent worker run needs it",
            ),
        ),
        pytest.param(
            ["--preload", "--worker-class", "gevent"],
            id="gevent-preload",  # the client is made before gevent patches the worker
            marks=pytest.mark.skipif(
                importlib.util.find_spec("gevent") is None,
                reason="gevent is not installed: the gevent worker run needs it",
            ),
        ),
    ],
)
def test_every_event_arrives_exactly_once_across_hup_and_sigterm(args, tmp_path):
    with Collector(host="127.0.0.1", port=0, memory=True) as collector:
        with _gunicorn(collector.url, args, tmp_path / "gunicorn.log") as (process, base):
            first_workers = _wait_for_workers(process.pid, old=set())
            clients = [httpx.Client(base_url=base, timeout=10.0) for _ in EMAILS]
            try:
                for client, email in zip(clients, EMAILS, strict=True):
                    assert client.post("/login", data={"email": email}).status_code == 200

                def phase(number: int, count: int, during: Any = None) -> None:
                    def run(user: int) -> None:
                        for i in range(count):
                            _export(clients[user], user * 10_000 + number * 1_000 + i)

                    with ThreadPoolExecutor(len(clients)) as pool:
                        futures = [pool.submit(run, user) for user in range(len(clients))]
                        if during is not None:
                            during()
                        for future in futures:
                            future.result()

                phase(1, 10)
                # 3 identifies and 30 events, all waiting in the workers' queues.
                assert collector.stats.events_stored == 0

                reloaded = threading.Event()

                def hup_midway() -> None:
                    time.sleep(0.1)
                    os.kill(process.pid, signal.SIGHUP)
                    reloaded.set()

                phase(2, 25, during=hup_midway)
                assert reloaded.is_set()
                _wait_for_workers(process.pid, old=first_workers)
                # The old workers delivered everything they had when they stopped.
                assert collector.stats.events_stored >= 33
                phase(3, 10)
            finally:
                for client in clients:
                    client.close()

            process.send_signal(signal.SIGTERM)
            assert process.wait(30) == 0

        expected_ids = {
            user * 10_000 + number * 1_000 + i
            for user in range(len(EMAILS))
            for number, count in ((1, 10), (2, 25), (3, 10))
            for i in range(count)
        }
        events = collector.wait_for_events(len(expected_ids) + len(EMAILS), timeout=10)
        time.sleep(0.2)  # anything extra (a duplicate) would arrive right behind
        events = collector.events(limit=1000)

        exported = [e for e in events if e.get("eventName") == "report_exported"]
        counts = collections.Counter(e["properties"]["report_id"] for e in exported)
        assert set(counts) == expected_ids
        assert set(counts.values()) == {1}
        for event in exported:
            user = event["properties"]["report_id"] // 10_000
            assert event["email"] == EMAILS[user]
            assert event["customerDomain"] == EMAILS[user].rpartition("@")[2]
        identifies = [e for e in events if e["type"] == "identify"]
        assert sorted(e["email"] for e in identifies) == sorted(EMAILS)
        assert len(events) == len(expected_ids) + len(EMAILS)
        assert collector.stats.duplicates == 0
        assert len({e["uuid"] for e in events}) == len(events)
