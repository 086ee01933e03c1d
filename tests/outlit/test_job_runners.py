"""RQ's workers, real ones, on an in-memory Redis (fakeredis), with the README's recipe.

RQ's default worker forks a process for each job and ends it with ``os._exit()``: no exit hook
runs there, so a job's events leave only if the job flushes (the README's RQ example does).
``SimpleWorker`` runs jobs in its own process, where the client sends as anywhere else.
Events go to the local collector on 127.0.0.1.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

rq = pytest.importorskip("rq", reason="rq is in the dev extra")
fakeredis = pytest.importorskip("fakeredis", reason="fakeredis is in the dev extra")

pytestmark = pytest.mark.skipif(
    not hasattr(os, "fork"), reason="RQ's default worker forks a process per job"
)


@pytest.fixture
def rq_module(collector, readme_blocks, run_readme_block, monkeypatch) -> Any:
    """The README's RQ job module, its client pointed at the collector."""
    monkeypatch.setenv("OUTLIT_PUBLIC_KEY", "pk_test_rq")
    monkeypatch.setenv("OUTLIT_API_HOST", collector.url)
    source = readme_blocks(["## Background jobs (Celery, RQ, Dramatiq)"])[1]
    module = run_readme_block("readme_rq_jobs", source, deliver=lambda email, template: None)
    # The job without the README's flush, for what the README says it would lose.
    module.send_email_without_flush = _without_flush(module)
    yield module
    module.outlit.shutdown(timeout=2)


def _without_flush(module: Any) -> Any:
    def send_email_without_flush(email: str, template_id: str) -> None:
        module.outlit.track(
            email=email, event_name="email_sent", properties={"templateId": template_id}
        )

    send_email_without_flush.__module__ = module.__name__
    send_email_without_flush.__qualname__ = "send_email_without_flush"
    return send_email_without_flush


def _run(worker_class: Any, function: Any, count: int) -> None:
    connection = fakeredis.FakeStrictRedis()
    queue = rq.Queue(connection=connection)
    for n in range(count):
        queue.enqueue(function, f"u{n}@example.com", f"t{n}")
    worker = worker_class([queue], connection=connection)
    assert worker.work(burst=True)
    assert queue.count == 0
    assert len(rq.registry.FailedJobRegistry(queue=queue)) == 0


def _templates(collector: Any) -> list[str]:
    return sorted(event["properties"]["templateId"] for event in collector.events(limit=100))


def test_the_readme_job_delivers_from_the_forking_worker(rq_module, collector):
    _run(rq.Worker, rq_module.send_email, 5)
    # Each job process flushed before RQ ended it: nothing is left to this process.
    assert _templates(collector) == [f"t{n}" for n in range(5)]
    assert collector.stats.duplicates == 0


def test_without_the_flush_the_forking_worker_loses_the_jobs_events(rq_module, collector):
    _run(rq.Worker, rq_module.send_email_without_flush, 3)
    rq_module.outlit.flush(timeout=2)  # this process queued nothing: the children did
    assert collector.events(limit=100) == []


def test_the_simple_worker_sends_in_the_background_with_no_flush(rq_module, collector):
    _run(rq.SimpleWorker, rq_module.send_email_without_flush, 3)
    assert rq_module.outlit.flush(timeout=5)
    assert _templates(collector) == ["t0", "t1", "t2"]
