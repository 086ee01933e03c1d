"""benchmarks/sink.py, the receiver of the framework benchmarks: it must count what the SDK
sends, notice a uuid sent twice, and answer as the service does (or the figures lie)."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import statistics
import time
import urllib.request
from collections.abc import Iterator
from types import ModuleType

import pytest

from outlit import Outlit

FRAMEWORKS_PY = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "benchmarks", "frameworks.py"
)


def load_frameworks() -> ModuleType:
    # benchmarks/ is a folder of scripts, not a package: loaded by path, off sys.path.
    spec = importlib.util.spec_from_file_location("outlit_bench_frameworks", FRAMEWORKS_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


frameworks = load_frameworks()
pytestmark = pytest.mark.slow


@contextlib.contextmanager
def running_sink() -> Iterator[str]:
    """benchmarks/sink.py in its own process on a loopback port: its URL, stopped after."""
    process, url = frameworks.start_collector("sink")
    try:
        yield url
    finally:
        frameworks.stop(process)


@pytest.fixture
def sink() -> Iterator[str]:
    with running_sink() as url:
        yield url


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

    # Two events with one uuid (and a "uuid" inside properties, which is not an event's).
    event = {"type": "custom", "uuid": "same", "properties": {"uuid": "not-an-event"}}
    body = json.dumps({"source": "server", "events": [event, event]}).encode()
    request = urllib.request.Request(
        f"{sink}/api/i/v1/pk_bench/events", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert json.load(response) == {"success": True, "processed": 2}
    counted = stats(sink)
    assert (counted["events_stored"], counted["duplicates"]) == (251, 1)


def test_shared_cpu_costs_are_read_against_both_plain_servers_round_by_round(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # (requests answered, CPU seconds) per round. The plain servers answer 1,000 and 1,100
    # (mean 1,050); the outlit server 10% fewer than that mean, at 20% more CPU per request.
    base_cpu = (1.0 / 1000 + 1.0 / 1100) / 2
    counts = {
        "plain": [(1000, 1.0)] * 3,
        "plain-2": [(1100, 1.0)] * 3,
        "outlit": [(945, 945 * base_cpu * 1.2)] * 3,
        "empty-middleware": [(1050, 1050 * base_cpu)] * 3,
    }
    results = frameworks.report_shared("django", "gunicorn", counts, seconds=3.0)
    ((label, cost, cpu_cost),) = results  # only outlit's variants are results
    assert label == "django outlit"
    assert cost == pytest.approx(10.0)
    assert cpu_cost == pytest.approx(20.0)
    printed = capsys.readouterr().out
    assert "two plain servers differ by -10.0%" in printed
    assert "empty-middleware" in printed and "+0.0%" in printed


def test_the_interval_resamples_server_starts_not_rounds() -> None:
    # One start: nothing to resample.
    assert frameworks.starts_interval([1.0, 2.0, 3.0], [0, 0, 0]) is None
    # Every start alike: the interval is the median itself.
    assert frameworks.starts_interval([4.0] * 6, [0, 0, 1, 1, 2, 2]) == (4.0, 4.0)
    # Rounds agree within each start, starts disagree: the interval spans the starts, which
    # resampling rounds one by one would hide (120 tightly clustered rounds).
    starts = [n // 20 for n in range(120)]
    costs = [float(start) + (n % 20) * 0.001 for n, start in enumerate(starts)]
    low, high = frameworks.starts_interval(costs, starts)
    assert low <= statistics.median(costs) <= high
    assert high - low >= 1.5 and low >= 0.0 and high <= 5.1
    assert frameworks.starts_interval(costs, starts) == (low, high)  # seeded


def test_shared_figures_carry_their_interval_when_there_were_several_starts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    counts = {
        "plain": [(1000, 1.0)] * 4,
        "plain-2": [(1000, 1.0)] * 4,
        "outlit": [(950, 1.0), (950, 1.0), (900, 1.0), (900, 1.0)],
    }
    frameworks.report_shared("django", "gunicorn", counts, seconds=1.0)
    assert "95%" not in capsys.readouterr().out
    frameworks.report_shared("django", "gunicorn", counts, seconds=1.0, starts=[0, 0, 1, 1])
    outlit_line = next(
        line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("outlit")
    )
    assert "+7.5% [95%: +5.0 to +10.0]" in outlit_line


def test_run_seconds_counts_the_time_a_process_family_spends_on_a_cpu() -> None:
    if not os.path.exists("/proc/self/task"):
        pytest.skip("needs Linux /proc")
    before = frameworks.run_seconds(os.getpid())
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:
        pass
    spent = frameworks.run_seconds(os.getpid()) - before
    assert 0.15 <= spent <= 5.0


def test_sessions_rotate_the_start_order_and_share_the_rounds() -> None:
    assert frameworks.sessions(["plain", "outlit", "empty"], rounds=7, restarts=3) == [
        (["plain", "outlit", "empty"], 3),
        (["outlit", "empty", "plain"], 2),
        (["empty", "plain", "outlit"], 2),
    ]
    assert frameworks.sessions(["plain", "outlit"], rounds=2, restarts=5) == [
        (["plain", "outlit"], 1),
        (["outlit", "plain"], 1),
    ]


def test_variant_keeps_the_plain_server_and_the_named_variants_only() -> None:
    targets = {"plain": "a:plain", "outlit": "a:outlit", "empty-middleware": "a:empty"}
    assert frameworks.chosen_variants(targets, None) == targets
    assert frameworks.chosen_variants(targets, ["outlit"]) == {
        "plain": "a:plain",
        "outlit": "a:outlit",
    }
    assert frameworks.chosen_variants(targets, ["g-attribute"]) == {"plain": "a:plain"}
