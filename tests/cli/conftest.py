"""Fixtures for the command line's tests: a real collector on 127.0.0.1, an environment without
the user's Outlit settings, and a helper that runs ``python -m outlit`` as a separate process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

from outlit._collector.server import Collector


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's own OUTLIT_* settings must not decide what these tests see.
    monkeypatch.delenv("OUTLIT_PUBLIC_KEY", raising=False)
    monkeypatch.delenv("OUTLIT_API_HOST", raising=False)


@pytest.fixture
def collector() -> Iterator[Collector]:
    with Collector(host="127.0.0.1", port=0, memory=True) as running:
        yield running


@pytest.fixture
def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def run_outlit() -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("OUTLIT_")}
        environment.update(env)
        return subprocess.run(
            [sys.executable, "-m", "outlit", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=environment,
        )

    return run
