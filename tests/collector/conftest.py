"""Fixtures for the local collector's tests: a running collector and a client for it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from collector_helpers import OPENAPI_PATH, Client

from outlit._collector import Collector


@pytest.fixture
def collector() -> Iterator[Collector]:
    with Collector(port=0, memory=True) as running:
        yield running


@pytest.fixture
def client(collector: Collector) -> Iterator[Client]:
    connection = Client(collector.port)
    yield connection
    connection.close()


@pytest.fixture(scope="session")
def openapi() -> dict[str, Any]:
    if not OPENAPI_PATH.is_file():
        pytest.skip(f"the ingest OpenAPI description is not at {OPENAPI_PATH}")
    loaded: dict[str, Any] = json.loads(OPENAPI_PATH.read_text())
    return loaded
