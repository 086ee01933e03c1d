"""The example project (examples/django_app) served for real, sending to the local collector over
loopback: gunicorn with 2 workers (sync and gthread workers; with and without --preload; across
SIGHUP, a worker restart and SIGTERM), uvicorn (ASGI), and management commands. Every request's
event must arrive exactly once.

The client's flush interval is an hour here, so nothing is delivered while the servers run:
what arrives was delivered by the exit-time flush of each process that queued it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from outlit._collector.server import Collector

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "django_app"

SETUP_DATABASE = """
import django
django.setup()
from django.core.management import call_command
from django.contrib.auth import get_user_model
from django.utils import timezone
call_command("migrate", verbosity=0)
call_command("create_demo_user")
get_user_model().objects.filter(username="jane").update(last_login=timezone.now())
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server_collector() -> Iterator[Collector]:
    with Collector(host="127.0.0.1", port=0, memory=True) as running:
        yield running


@pytest.fixture
def collector_now(server_collector: Collector) -> Collector:
    server_collector.reset()
    return server_collector


@pytest.fixture(scope="module")
def example_env(tmp_path_factory: pytest.TempPathFactory, server_collector: Collector) -> dict:
    """The environment the example runs in: a migrated database with the demo user, and the
    collector as the API host."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("OUTLIT_", "DJANGO_", "EXAMPLE_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="exampleproject.settings",
        DJANGO_DEBUG="0",
        EXAMPLE_DB_PATH=str(tmp_path_factory.mktemp("example") / "db.sqlite3"),
        OUTLIT_API_HOST=server_collector.url,
        OUTLIT_PUBLIC_KEY="pk_example_e2e",
        OUTLIT_FLUSH_INTERVAL="3600",
        PYTHONUNBUFFERED="1",
    )
    subprocess.run(
        [sys.executable, "-c", SETUP_DATABASE],
        cwd=EXAMPLE,
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    return env


class Server:
    def __init__(self, process: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.process = process
        self.url = url
        self.log = log

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, as a process manager would, and wait for a clean exit."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)


@contextlib.contextmanager
def serve(args: list[str], env: dict, tmp_path: Path, port: int) -> Iterator[Server]:
    log = tmp_path / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            args, cwd=EXAMPLE, env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    server = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(server.url + "/accounts/login/", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the server did not start:\n{server.output()}")
            time.sleep(0.1)
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def gunicorn(port: int, *extra: str) -> list[str]:
    import gunicorn.config

    args = [sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}"]
    args += ["--graceful-timeout", "15", *extra]
    if "control_socket_disable" in gunicorn.config.Config().settings:
        args.append("--no-control-socket")  # gunicorn 25+: one socket per user otherwise
    return [*args, "exampleproject.wsgi"]


def sign_in(session: httpx.Client) -> None:
    session.get("/accounts/login/")
    response = session.post(
        "/accounts/login/",
        data={
            "username": "jane",
            "password": "outlit-demo",
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
    )
    assert response.status_code == 302, response.text


def export(session: httpx.Client, rows: int) -> None:
    response = session.get("/reports/export/", params={"rows": rows})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv"


def exported_rows(collector: Collector) -> list[int]:
    return sorted(
        e["properties"]["rows"] for e in collector.events(name="report_exported", limit=1000)
    )


def assert_exactly_once(collector: Collector, rows: range) -> None:
    assert exported_rows(collector) == list(rows)
    assert collector.stats.duplicates == 0
    uuids = Counter(e["uuid"] for e in collector.events(limit=1000))
    assert max(uuids.values()) == 1


def children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.add(int(stat.parent.name))
    return found


def export_all(session: httpx.Client, rows: range) -> None:
    # Four at a time, so that a gthread worker serves several on its threads at once.
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(partial(export, session), rows))


@pytest.mark.parametrize("worker", ["sync", "gthread"])
def test_gunicorn_delivers_every_event_once_across_hup_and_sigterm(
    example_env, collector_now, tmp_path, worker
):
    port = free_port()
    args = gunicorn(port, "-k", worker, *(["--threads", "4"] if worker == "gthread" else []))
    with serve(args, example_env, tmp_path, port) as server:
        assert f"Using worker: {worker}" in server.output()
        with httpx.Client(base_url=server.url) as session:
            sign_in(session)
            export_all(session, range(20))
            # Held in the workers' queues until they exit.
            assert collector_now.events() == []

            old_workers = children(server.process.pid)
            assert len(old_workers) == 2
            server.process.send_signal(signal.SIGHUP)  # new workers; the old ones stop
            collector_now.wait_for_events(20, name="report_exported", timeout=20)
            # An old worker may still be finishing its exit (or awaiting the master's reaping)
            # after its events arrived, and a gthread worker's kept-alive connections close
            # only when it is gone: wait for it rather than racing it.
            deadline = time.monotonic() + 15
            while children(server.process.pid) & old_workers and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not children(server.process.pid) & old_workers
            export_all(session, range(20, 40))
        assert server.stop() == 0
    assert_exactly_once(collector_now, range(40))
    (identify,) = collector_now.events(type="identify")
    assert identify["email"] == "jane@acme.com"
    assert identify["customerDomain"] == "acme.com"
    event = collector_now.events(name="report_exported", limit=1)[0]
    assert (event["email"], event["customerDomain"]) == ("jane@acme.com", "acme.com")
    assert event["userId"] == identify["userId"]


def test_gunicorn_preload_master_holds_no_client_and_restarts_lose_nothing(
    example_env, collector_now, tmp_path
):
    port = free_port()
    with serve(gunicorn(port, "--preload"), example_env, tmp_path, port) as server:
        master = server.process.pid
        with httpx.Client(base_url=server.url) as session:
            sign_in(session)
            for rows in range(30):
                export(session, rows)
            # The app was imported in the master before the fork, and started no thread there.
            assert len(list(Path(f"/proc/{master}/task").iterdir())) == 1
            # A worker killed on its own is replaced; what it held is delivered as it exits.
            victim = min(children(master))
            os.kill(victim, signal.SIGTERM)
            deadline = time.monotonic() + 20
            while victim in children(master) or len(children(master)) < 2:
                assert time.monotonic() < deadline, server.output()
                time.sleep(0.05)
            for rows in range(30, 40):
                export(session, rows)
        assert server.stop() == 0
    assert_exactly_once(collector_now, range(40))


def test_uvicorn_asgi_delivers_every_event_once_across_sigterm(
    example_env, collector_now, tmp_path
):
    port = free_port()
    args = [sys.executable, "-m", "uvicorn", "exampleproject.asgi:application"]
    args += ["--host", "127.0.0.1", "--port", str(port)]
    with serve(args, example_env, tmp_path, port) as server:
        with httpx.Client(base_url=server.url) as session:
            sign_in(session)
            for rows in range(25):
                export(session, rows)
            session.get("/billing/upgrade/")
            response = session.post(
                "/billing/upgrade/",
                data={"to_plan": "pro", "csrfmiddlewaretoken": session.cookies["csrftoken"]},
            )
            assert response.status_code == 302
        assert collector_now.events() == []
        # uvicorn ends itself with the signal after its graceful shutdown (no exit handlers run
        # then): what arrives was flushed by OutlitLifespan at lifespan shutdown.
        assert server.stop() in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in server.output()
        # OutlitLifespan ran its startup, so the middleware had nothing to warn about.
        assert "OutlitLifespan" not in server.output()
    assert_exactly_once(collector_now, range(25))
    (upgraded,) = collector_now.events(name="subscription_upgraded")
    assert upgraded["properties"] == {"fromPlan": "starter", "toPlan": "pro"}
    assert upgraded["customerDomain"] == "acme.com"
    (paid,) = collector_now.events(type="billing")
    assert (paid["status"], paid["customerDomain"]) == ("paid", "acme.com")
    (snapshot,) = collector_now.events(name="usage_snapshot_refreshed")
    assert snapshot["properties"] == {"plan": "pro", "seats": 1}
    assert len(collector_now.events(type="identify")) == 1


def run_manage(env: dict, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=EXAMPLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_commands_events_are_delivered_before_it_returns(example_env, collector_now):
    started = time.monotonic()
    result = run_manage(example_env, "mark_engaged")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert "Marked 1 user(s) engaged." in result.stdout
    (event,) = collector_now.events(type="stage")
    assert event["stage"] == "engaged"
    assert event["properties"]["__email"] == "jane@acme.com"
    assert elapsed < 10  # delivered at exit, not by waiting out the flush interval


def test_manage_py_outlit_send_and_check_against_the_collector(example_env, collector_now):
    result = run_manage(example_env, "outlit", "send")
    assert result.returncode == 0, result.stderr
    assert "Delivered 'outlit_test_event'" in result.stdout
    assert len(collector_now.events(name="outlit_test_event")) == 1
    result = run_manage(example_env, "outlit", "check")
    assert result.returncode == 0, result.stderr
    assert "pk_exam…" in result.stdout and "pk_example_e2e" not in result.stdout


def test_manage_py_check_passes_for_the_example(example_env: dict[str, Any]):
    result = run_manage(example_env, "check", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stderr + result.stdout
