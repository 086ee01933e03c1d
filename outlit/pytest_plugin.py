"""pytest fixtures for applications that use Outlit, registered when outlit is installed.

``outlit_events``
    Records every Outlit client that is alive when the test starts or is created during it
    (framework adapters' clients included) and yields the recorded wire events, checked
    against the ingest contract. Nothing goes to the network. In a test that also asks for
    ``outlit_collector``, clients pointed at that collector send to it. See
    :func:`outlit.testing.record`.
``outlit_collector``
    A local Outlit-compatible collector on a free 127.0.0.1 port (memory store), stopped after
    the test: point a client at ``outlit_collector.url``.

This module loads in every pytest run of every project that installs outlit, so it imports
nothing beyond pytest at load time; the fixtures import what they need when used.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from outlit._collector.server import Collector
    from outlit.testing import RecordedEvents


@pytest.fixture
def outlit_events(request: pytest.FixtureRequest) -> Iterator[RecordedEvents]:
    """The events Outlit clients send during the test, recorded instead of sent (but for
    clients pointed at the test's ``outlit_collector``)."""
    from outlit.testing import record

    # Often autouse (as the README advises), so also active in tests meant for the collector.
    collectors: list[str] = []
    if "outlit_collector" in request.fixturenames:
        url = getattr(request.getfixturevalue("outlit_collector"), "url", None)
        if isinstance(url, str):  # not, say, a project's own fixture of that name
            collectors.append(url)
    with record(except_hosts=collectors) as events:
        yield events


@pytest.fixture
def outlit_collector() -> Iterator[Collector]:
    """A running local collector (``.url``, ``.wait_for_events()``, ``.script()``...)."""
    from outlit._collector.server import Collector

    with Collector(host="127.0.0.1", port=0, memory=True) as collector:
        yield collector
