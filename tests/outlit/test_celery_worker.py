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
"""


def test_events_of_recycled_pool_processes_arrive_once_without_flush(collector, tmp_path):
    (tmp_path / "jobs.py").write_text(textwrap.dedent(APP))
    broker = tmp_path / "broker"
    broker.mkdir()
    env = {
        **os.environ,
        "BROKER_DIR": str(broker),
        "OUTLIT_PUBLIC_KEY": "pk_celery",
        "OUTLIT_API_HOST": collector.url,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
    }
    queued = subprocess.run(
        [sys.executable, "-c", "from jobs import job\nfor n in range(6): job.delay(n)"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert queued.returncode == 0, queued.stderr
    log = tmp_path / "worker.log"
    with log.open("wb") as log_file:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "jobs",
                "worker",
                "--pool=prefork",
                "--concurrency=2",
                "--max-tasks-per-child=1",
                "--loglevel=WARNING",
            ],
            env=env,
            cwd=tmp_path,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
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
