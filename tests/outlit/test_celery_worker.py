"""A real Celery worker (prefork pool, filesystem broker: no server to start) whose pool
processes are recycled after every task: each one ends with ``os._exit()``, so the events it
queued arrive only through the ``worker_process_shutdown`` hook the client connects."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("celery", reason="celery is in the dev extra; without it there is no worker")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(os, "fork"), reason="Celery's prefork pool needs fork()"),
]

ROOT = Path(__file__).resolve().parents[2]

APP = """
import os
from celery import Celery
from outlit import Outlit

app = Celery("jobs", broker="filesystem://")
folder = os.environ["BROKER_DIR"]
app.conf.update(
    broker_transport_options={
        "data_folder_in": folder, "data_folder_out": folder, "store_processed": False,
    },
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)
outlit = Outlit(flush_interval=60)  # nothing sends before the process ends


@app.task
def job(n):
    outlit.track(user_id=f"job{n}", event_name="celery_job_done")
    open(os.path.join(folder, "..", f"done-{n}"), "w").close()  # for the test to see
"""


def _queue_jobs(tmp_path: Path, collector_url: str, count: int) -> dict[str, str]:
    (tmp_path / "jobs.py").write_text(textwrap.dedent(APP))
    broker = tmp_path / "broker"
    broker.mkdir()
    env = {
        **os.environ,
        "BROKER_DIR": str(broker),
        "OUTLIT_PUBLIC_KEY": "pk_celery",
        "OUTLIT_API_HOST": collector_url,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
    }
    queued = subprocess.run(
        [sys.executable, "-c", f"from jobs import job\nfor n in range({count}): job.delay(n)"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert queued.returncode == 0, queued.stderr
    return env


def _start_worker(tmp_path: Path, env: dict[str, str], *options: str) -> subprocess.Popen[bytes]:
    with (tmp_path / "worker.log").open("wb") as log_file:
        return subprocess.Popen(
            [
                *(sys.executable, "-m", "celery", "-A", "jobs", "worker", "--pool=prefork"),
                *options,
                "--loglevel=WARNING",
            ],
            env=env,
            cwd=tmp_path,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def test_events_of_recycled_pool_processes_arrive_once_without_flush(collector, tmp_path):
    env = _queue_jobs(tmp_path, collector.url, 6)
    log = tmp_path / "worker.log"
    worker = _start_worker(tmp_path, env, "--concurrency=2", "--max-tasks-per-child=1")
    try:
        events = collector.wait_for_events(6, timeout=60)
        worker.send_signal(signal.SIGTERM)  # a warm shutdown, as a deploy does
        worker.wait(30)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
    output = log.read_text(errors="replace")
    time.sleep(0.2)
    events = collector.events()
    assert Counter(e["userId"] for e in events) == {f"job{n}": 1 for n in range(6)}, output


def test_pool_processes_flush_through_an_outage_at_a_warm_shutdown(collector, tmp_path):
    # The flush at a pool process's exit retries through a brief outage. (Where the pool's
    # supervisor thread forked the process, Celery used to kill it when that thread ended,
    # mid-flush: a review saw 100 of 300 events lost so. This run does not reliably reproduce
    # which thread forks; the next test checks the cause directly.)
    jobs = 30
    env = _queue_jobs(tmp_path, collector.url, jobs)
    log = tmp_path / "worker.log"
    # Two processes do 10 jobs each and are recycled (their flush at exit delivers them); their
    # replacements do the last 10 and still hold those events at the SIGTERM.
    worker = _start_worker(tmp_path, env, "--concurrency=2", "--max-tasks-per-child=10")
    try:
        deadline = time.monotonic() + 90
        while len(list(tmp_path.glob("done-*"))) < jobs and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(list(tmp_path.glob("done-*"))) == jobs, log.read_text(errors="replace")
        collector.status = 503  # the service fails for two seconds, from just before the stop
        worker.send_signal(signal.SIGTERM)
        time.sleep(2)
        collector.status = None
        worker.wait(30)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
    deadline = time.monotonic() + 10
    while len(collector.events()) < jobs and time.monotonic() < deadline:
        time.sleep(0.1)  # a replacement process may still be finishing its flush
    users = Counter(e["userId"] for e in collector.events())
    assert users == {f"job{n}": 1 for n in range(jobs)}, log.read_text(errors="replace")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_flush_at_a_pool_process_exit_is_not_cut_short_by_its_death_signal():
    # Celery has each pool process killed (PR_SET_PDEATHSIG, SIGKILL) when the thread that
    # forked it ends; the process's flush at exit clears that first, so a slow flush ends.
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import signal
                import billiard.util as util
                from outlit import _client

                util.set_pdeathsig(signal.SIGKILL)
                assert util.get_pdeathsig() == signal.SIGKILL
                _client._flush_at_celery_child_exit(sender=None)
                assert util.get_pdeathsig() == 0, util.get_pdeathsig()
                """
            ),
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
