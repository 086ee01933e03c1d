"""An app's logging set-up that raises (a filter reading request-bound state outside a
request, say) must not turn outlit's log lines into exceptions in the app or kill the worker."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import pytest

from outlit import MockTransport, Outlit
from outlit._transport import Request, Response


class _RaisingFilter(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def filter(self, record: logging.LogRecord) -> bool:
        self.calls += 1
        raise RuntimeError("no request context")


@pytest.fixture
def raising_logging() -> Iterator[_RaisingFilter]:
    handler = logging.StreamHandler()
    raising = _RaisingFilter()
    handler.addFilter(raising)
    logger = logging.getLogger("outlit")
    logger.addHandler(handler)
    try:
        yield raising
    finally:
        logger.removeHandler(handler)


def test_calls_that_log_do_not_raise_what_the_apps_logging_raises(
    raising_logging, capsys, monkeypatch
):
    from outlit import _events, _log

    monkeypatch.setattr(_log, "_said_broken", False)  # said once per process
    monkeypatch.setattr(_events, "_warned_seconds", False)
    client = Outlit(public_key="pk_test", transport=MockTransport(), flush_interval=3600)
    try:
        # A timestamp that looks like seconds warns (said once per process: reset above).
        client.track(event_name="e", user_id="u", timestamp=5_000)

        def broken_identity() -> dict[str, str]:
            raise LookupError("session store down")

        assert client.bind(broken_identity).identity == {}  # logged with its traceback
        assert raising_logging.calls >= 1
        assert client.flush(5)
        assert client.stats.delivered == 1
    finally:
        client.shutdown()
    err = capsys.readouterr().err
    assert err.count("outlit: a logging handler or filter raised RuntimeError: no request") == 1


def test_the_worker_survives_logging_that_raises_and_delivers_after_a_failure(raising_logging):
    answers = iter([503])
    lock = threading.Lock()

    def handler(request: Request) -> Response | int:
        with lock:
            return next(answers, 200)

    transport = MockTransport(handler)
    client = Outlit(public_key="pk_test", transport=transport, flush_interval=0.05)
    try:
        client.track(event_name="first", user_id="u")  # its 503 is logged as a warning
        # The worker counts the retry, then logs the failure: wait for both.
        deadline = time.monotonic() + 10
        while (
            client.stats.retries == 0 or raising_logging.calls == 0
        ) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert client.stats.retries == 1
        assert raising_logging.calls >= 1  # the warning met the raising filter
        client.track(event_name="second", user_id="u")
        assert client.flush(10)
        assert client._worker.alive
        assert [e["eventName"] for e in transport.events] == ["first", "first", "second"]
    finally:
        client.shutdown()
