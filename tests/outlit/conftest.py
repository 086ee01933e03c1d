"""Fixtures for the core client's tests: a real local collector on 127.0.0.1, and clients that
are always shut down after the test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from outlit import Outlit, RetryPolicy
from outlit._collector.server import Collector

#: Fast retries keep failure tests short; the policy's shape is what is being tested.
FAST_RETRY = RetryPolicy(initial_backoff=0.02, max_backoff=0.1)


@pytest.fixture
def collector() -> Iterator[Collector]:
    with Collector(host="127.0.0.1", port=0, memory=True) as running:
        yield running


@pytest.fixture
def make_client() -> Iterator[Callable[..., Outlit]]:
    made: list[Outlit] = []

    def make(**kwargs: Any) -> Outlit:
        kwargs.setdefault("public_key", "pk_test_e2e")
        kwargs.setdefault("flush_interval", 0.05)
        kwargs.setdefault("retry", FAST_RETRY)
        client = Outlit(**kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.shutdown(timeout=2)
