"""The viewer page in a real headless Chromium: an event sent after the page opened shows up.

Chromium is driven over the DevTools protocol on ``--remote-debugging-pipe`` (fd 3 in,
fd 4 out, NUL-terminated JSON): standard library only, no websocket client, no port.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from collector_helpers import Client, body, custom

from outlit._collector import Collector

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-pipe",
]

_LAUNCHER = (
    "import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); "
    "os.execv(sys.argv[3], sys.argv[3:])"
)

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Chromium at /usr/bin/chromium (apt-get install chromium)"
)


class DevTools:
    """A minimal DevTools-protocol client over Chromium's debugging pipe."""

    def __init__(self, url: str, profile: Path) -> None:
        # Chromium reads commands from fd 3 and writes answers to fd 4; a tiny Python
        # launcher moves our pipe ends onto those numbers, then becomes Chromium.
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        try:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _LAUNCHER,
                    str(to_browser_read),
                    str(from_browser_write),
                    str(CHROMIUM),
                    *FLAGS,
                    f"--user-data-dir={profile}",
                    url,
                ],
                pass_fds=(to_browser_read, from_browser_write),
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=self._log,
            )
        finally:
            os.close(to_browser_read)
            os.close(from_browser_write)
        self._buffer = b""
        self._next_id = 0

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 15
        while True:
            reply = self._read(deadline)
            if reply.get("id") != self._next_id:
                continue  # an event, or a reply for another session
            if "error" in reply:
                raise RuntimeError(f"{method}: {reply['error']}")
            result: dict[str, Any] = reply["result"]
            return result

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no answer from Chromium; its log:\n{self.log()}")
            ready, _, _ = select.select([self._from_browser], [], [], remaining)
            if ready:
                chunk = os.read(self._from_browser, 65536)
                if not chunk:
                    raise RuntimeError(f"Chromium closed the pipe; its log:\n{self.log()}")
                self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        parsed: dict[str, Any] = json.loads(message)
        return parsed

    def evaluate(self, session: str, expression: str) -> Any:
        result = self.call("Runtime.evaluate", session, expression=expression, returnByValue=True)
        return result["result"].get("value")

    def wait_for(self, session: str, expression: str, timeout: float = 10) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(session, expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"{expression} stayed falsy for {timeout}s")
            time.sleep(0.1)

    def log(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-4000:]

    def close(self) -> None:
        try:
            if self.process.poll() is None:
                with contextlib.suppress(OSError, RuntimeError, TimeoutError):
                    self.call("Browser.close")
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
        finally:
            os.close(self._to_browser)
            os.close(self._from_browser)
            self._log.close()


@pytest.fixture
def browser_on(tmp_path: Path) -> Iterator[Any]:
    opened: list[DevTools] = []

    def open_page(url: str) -> tuple[DevTools, str]:
        devtools = DevTools(url, tmp_path / "profile")
        opened.append(devtools)
        targets = devtools.call("Target.getTargets")["targetInfos"]
        page = next(target for target in targets if target["type"] == "page")
        session = devtools.call("Target.attachToTarget", targetId=page["targetId"], flatten=True)
        return devtools, session["sessionId"]

    yield open_page
    for devtools in opened:
        devtools.close()


def test_event_sent_after_the_page_opened_appears_in_the_viewer(browser_on: Any) -> None:
    with Collector(port=0, memory=True) as collector:
        client = Client(collector.port)
        try:
            client.post(body(custom(uuid="before-open", eventName="old_news")))
            devtools, page = browser_on(collector.url + "/")
            devtools.wait_for(page, "window.outlitViewer && window.outlitViewer.ready")
            assert devtools.evaluate(page, "document.querySelectorAll('tr.event').length") == 1

            client.post(
                body(
                    custom(
                        uuid="after-open",
                        eventName="report_exported",
                        email="ada@example.com",
                        properties={"format": "csv"},
                    )
                )
            )
            row = devtools.wait_for(
                page,
                "(document.querySelector('tr[data-uuid=\"after-open\"]') || {}).innerText",
            )
        finally:
            client.close()
    assert "report_exported" in row
    assert "ada@example.com" in row
    assert "acme.com" in row
    assert '"format":"csv"' in row


def test_viewer_filters_by_type(browser_on: Any) -> None:
    with Collector(port=0, memory=True) as collector:
        client = Client(collector.port)
        try:
            client.post(body(custom(uuid="c1")))
            client.post(body({**custom(uuid="i1"), "type": "identify", "eventName": "ignored"}))
            devtools, page = browser_on(collector.url + "/")
            devtools.wait_for(page, "window.outlitViewer && window.outlitViewer.ready")
            devtools.evaluate(
                page,
                "const s = document.querySelector('select[name=type]');"
                "s.value = 'identify'; s.dispatchEvent(new Event('input', {bubbles: true})); 1",
            )
            shown = devtools.wait_for(
                page,
                "(() => { const rows = [...document.querySelectorAll('tr.event')];"
                " return rows.length === 1 && rows[0].dataset.uuid; })()",
            )
        finally:
            client.close()
    assert shown == "i1"


def test_a_burst_larger_than_a_poll_shows_with_no_gap(browser_on: Any) -> None:
    # Polls ask for rows newer than the last shown, newest first: a burst of more than one
    # answer holds must still show every row the page has room for (MAX_ROWS, 1,000), the
    # newest ones, with none skipped between them.
    def burst(client: Client, prefix: str, count: int) -> list[str]:
        uuids = [f"{prefix}-{n:04d}" for n in range(count)]
        for start in range(0, count, 100):
            client.post(body(*(custom(uuid=u) for u in uuids[start : start + 100])))
        return uuids

    shown_uuids = "[...document.querySelectorAll('tr.event')].map(r => r.dataset.uuid)"
    with Collector(port=0, memory=True) as collector:
        client = Client(collector.port)
        try:
            client.post(body(custom(uuid="before-open")))
            devtools, page = browser_on(collector.url + "/")
            devtools.wait_for(page, "window.outlitViewer && window.outlitViewer.ready")
            first = burst(client, "a", 600)
            devtools.wait_for(page, "document.querySelectorAll('tr.event').length === 601")
            assert sorted(devtools.evaluate(page, shown_uuids)) == sorted(["before-open", *first])
            second = burst(client, "b", 1100)
            newest = set(second[-1000:])
            devtools.wait_for(
                page, f"(() => {{ const u = {shown_uuids}; return u.includes('{second[-1]}'); }})()"
            )
            devtools.wait_for(page, "document.querySelectorAll('tr.event').length === 1000")
            shown = devtools.evaluate(page, shown_uuids)
        finally:
            client.close()
    assert set(shown) == newest
    assert shown == sorted(shown, reverse=True)  # newest on top, in order
