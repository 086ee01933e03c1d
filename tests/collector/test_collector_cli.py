"""The collector's command line (what ``outlit dev`` runs), in a real subprocess."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from collector_helpers import Client, body, custom

from outlit._collector.store import EventStore

REPO = Path(__file__).resolve().parents[2]
RUN = "import sys; from outlit._collector import main; sys.exit(main(sys.argv[1:]))"


def test_cli_serves_until_sigterm_and_leaves_the_events_on_disk(tmp_path: Path) -> None:
    db = tmp_path / "dev.sqlite3"
    process = subprocess.Popen(
        [sys.executable, "-c", RUN, "--port", "0", "--db", str(db)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = [process.stdout.readline() for _ in range(4)]
        assert banner[0].startswith("Outlit collector listening on http://127.0.0.1:"), banner
        assert "OUTLIT_API_HOST=http://127.0.0.1:" in banner[3]
        port = int(banner[0].rsplit(":", 1)[1])
        client = Client(port)
        try:
            assert client.post(body(custom(uuid="from-cli"))).status == 200
        finally:
            client.close()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert "pk_test_collector -> 200 (1 accepted, 0 refused)" in stderr  # the request log
    with EventStore(db) as store:
        assert [row.uuid for row in store.events()] == ["from-cli"]


def test_cli_refuses_bad_options() -> None:
    result = subprocess.run(
        [sys.executable, "-c", RUN, "--fail-rate", "2", "--memory"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "fail_rate must be between 0 and 1" in result.stderr
