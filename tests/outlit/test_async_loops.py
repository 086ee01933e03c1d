"""``aflush()`` and ``ashutdown()`` under each event loop users run: asyncio (the rest of the
suite), trio (Starlette and FastAPI run on anyio, which can run on trio: hypercorn's trio
worker, ``TestClient(app, backend="trio")``), and none at all (a clear error)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from outlit import MockTransport, Outlit
from outlit._collector.server import Collector

trio = pytest.importorskip("trio", reason="trio is in the dev extra; this install lacks it")


def test_aflush_under_trio_waits_for_delivery_while_the_loop_keeps_running(
    collector: Collector, make_client: Any
) -> None:
    collector.latency = 0.3
    client = make_client(api_host=collector.url, flush_interval=60)
    client.track(email="a@example.com", event_name="trio_flush")

    async def main() -> tuple[bool, int]:
        ticks = 0
        async with trio.open_nursery() as nursery:

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    ticks += 1
                    await trio.sleep(0.01)

            nursery.start_soon(ticker)
            settled = bool(await client.aflush(timeout=5))
            nursery.cancel_scope.cancel()
        return settled, ticks

    settled, ticks = trio.run(main)
    assert settled
    assert [e["eventName"] for e in collector.events()] == ["trio_flush"]
    assert ticks >= 10, "the loop kept running while the flush waited"


def test_aflush_under_trio_gives_up_at_its_timeout_and_a_cancelled_one_takes_its_marker_back(
    make_client: Any,
) -> None:
    release = threading.Event()

    def stalled(request: Any) -> int:
        release.wait(10)
        return 200

    transport = MockTransport(stalled)
    client = make_client(transport=transport, flush_interval=60)
    client.track(email="a@example.com", event_name="stalled")

    async def main() -> tuple[bool, float]:
        started = time.monotonic()
        settled = bool(await client.aflush(timeout=0.2))
        waited = time.monotonic() - started
        with trio.move_on_after(0.1):
            await client.aflush(timeout=30)
        return settled, waited

    try:
        settled, waited = trio.run(main)
        assert not settled
        assert 0.15 < waited < 5
        assert client._worker.queue.markers == 0  # neither wait left its marker behind
    finally:
        release.set()
    assert client.flush(timeout=5)
    assert [e["eventName"] for e in transport.events] == ["stalled"]


def test_ashutdown_and_async_with_under_trio_deliver_and_close(collector: Collector) -> None:
    first = Outlit(public_key="pk_trio", api_host=collector.url, flush_interval=60)
    second = Outlit(public_key="pk_trio", api_host=collector.url, flush_interval=60)

    async def main() -> bool:
        first.track(email="a@example.com", event_name="shut_down")
        async with second:
            second.track(email="a@example.com", event_name="context")
        return bool(await first.ashutdown(timeout=5))

    assert trio.run(main)
    assert first.closed and second.closed
    assert sorted(e["eventName"] for e in collector.events()) == ["context", "shut_down"]


def test_aflush_outside_any_event_loop_says_what_to_call_instead(make_client: Any) -> None:
    client = make_client(transport=MockTransport(), flush_interval=60)
    client.track(email="a@example.com", event_name="queued")
    waiting = client.aflush(timeout=1)
    with pytest.raises(RuntimeError, match=r"asyncio or trio event loop.*call flush\(\)"):
        waiting.send(None)  # driven by hand: no loop runs on this thread
    shutting = client.ashutdown(timeout=1)
    with pytest.raises(RuntimeError, match=r"asyncio or trio event loop.*shutdown\(\)"):
        shutting.send(None)
    assert client.queue_size == 1  # nothing was lost: the event still waits for a flush
    assert client.flush(timeout=5)
