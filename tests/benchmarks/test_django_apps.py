"""The Django hello-world apps of the benchmarks, served by gunicorn as the benchmarks serve
them: each variant must be what its name says (the startproject project's middleware answer
for it; the tracked variant sends one event per request, the others none), or the figures
compare the wrong things."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from types import ModuleType

import pytest

# This folder is on sys.path (pytest's default import mode): test_sink is a sibling module.
from test_sink import load_frameworks, stats

frameworks: ModuleType = load_frameworks()
pytestmark = pytest.mark.slow

REQUESTS = 5
TRACKED = REQUESTS + 1  # and start_server's readiness check, one GET / answered
APP = "benchmarks.apps.django_hello:"


@pytest.fixture(scope="module")
def sink() -> Iterator[str]:
    process, url = frameworks.start_collector("sink")
    try:
        yield url
    finally:
        frameworks.stop(process)


def serve(sink: str, name: str) -> tuple[list[dict[str, str]], int]:
    """Start gunicorn on ``name``, send REQUESTS requests, stop it (SIGTERM: outlit flushes):
    (each response's headers, events the sink stored meanwhile)."""
    before = stats(sink)["events_stored"]
    port = frameworks.free_port()
    server = frameworks.start_server("gunicorn", APP + name, port, frameworks.server_env(sink))
    headers = []
    try:
        for _ in range(REQUESTS):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/")
            response = conn.getresponse()
            assert (response.status, response.read()) == (200, b"Hello, World!")
            headers.append({k.lower(): v for k, v in response.getheaders()})
            conn.close()
    finally:
        frameworks.stop(server)
    return headers, stats(sink)["events_stored"] - before


@pytest.mark.parametrize(
    ("name", "events"),
    [
        ("application_project_plain", 0),
        ("application_project_untracked", 0),
        ("application_project_outlit", TRACKED),
    ],
)
def test_the_startproject_variants_run_its_middleware_and_track_as_named(
    sink: str, name: str, events: int
) -> None:
    headers, stored = serve(sink, name)
    for answer in headers:
        # SecurityMiddleware and XFrameOptionsMiddleware, two of startproject's seven.
        assert answer["x-content-type-options"] == "nosniff"
        assert answer["x-frame-options"] == "DENY"
    assert stored == events


@pytest.mark.parametrize(
    ("name", "events"),
    [("application_plain", 0), ("application_untracked", 0), ("application_outlit", TRACKED)],
)
def test_the_bare_variants_run_no_middleware_of_djangos_and_track_as_named(
    sink: str, name: str, events: int
) -> None:
    headers, stored = serve(sink, name)
    for answer in headers:
        assert "x-frame-options" not in answer and "x-content-type-options" not in answer
    assert stored == events
