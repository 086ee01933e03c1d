"""benchmarks/sink.py, the receiver of the framework benchmarks: it must count what the SDK
sends, notice a uuid sent twice, and answer as the service does (or the figures lie)."""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from collections.abc import Iterator

import pytest

from outlit import Outlit

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "benchmarks")
sys.path.insert(0, BENCHMARKS)

import frameworks  # noqa: E402  (benchmarks/ is a folder of scripts, not a package)

pytestmark = pytest.mark.slow


@pytest.fixture
def sink() -> Iterator[str]:
    process, url = frameworks.start_collector("sink")
    try:
        yield url
    finally:
        frameworks.stop(process)


def stats(url: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{url}/api/stats", timeout=5) as response:
        return dict(json.load(response))


def test_counts_what_the_client_delivers_and_notices_a_resent_uuid(sink: str) -> None:
    with Outlit(public_key="pk_bench", api_host=sink, flush_interval=60) as client:
        for n in range(250):
            client.track(event_name="hello", user_id=f"u{n}", properties={"n": n})
        result = client.flush(timeout=10)
        assert result and client.stats.delivered == 250
    counted = stats(sink)
    assert counted["events_stored"] == 250
    assert counted["ingest_requests"] == 3  # 100 + 100 + 50
    assert counted["duplicates"] == 0

    body = json.dumps(
        {"source": "server", "events": [{"type": "custom", "uuid": "same"}] * 2}
    ).encode()
    request = urllib.request.Request(
        f"{sink}/api/i/v1/pk_bench/events", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert json.load(response) == {"success": True, "processed": 2}
    assert stats(sink)["duplicates"] == 1
