"""``outlit demo``: the seed's scenarios end to end against the in-process collector, and the
report's verdict when a scenario breaks or an event is lost, unexpected or delivered twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from importlib.util import find_spec

import httpx
import pytest

from outlit import Outlit
from outlit import _demo as demo_module
from outlit._cli import main
from outlit._demo import SCENARIOS, Demo, Scenario
from outlit._transport import HTTPTransport, Request


@pytest.mark.slow
def test_every_scenario_event_arrives_exactly_once(
    run_outlit: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    # A process of its own: the Django scenario configures Django, once per process.
    result = run_outlit("demo", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["viewer"].startswith("http://127.0.0.1:")

    statuses = {scenario["name"]: scenario for scenario in report["scenarios"]}
    assert list(statuses) == [scenario.name for scenario in SCENARIOS]
    for scenario in SCENARIOS:
        outcome = statuses[scenario.name]
        importable = all(find_spec(module) for module, _ in scenario.requires)
        assert outcome["status"] == ("ok" if importable else "skipped"), outcome
        if outcome["status"] == "ok":
            assert outcome["events"] == scenario.expected_events

    summary = report["summary"]
    expected = sum(s["events"] for s in report["scenarios"] if s["status"] == "ok")
    assert summary["sent"] == summary["stored_once"] == expected
    assert summary["missing"] == summary["duplicates"] == summary["refused"] == 0
    assert len({event["uuid"] for event in report["events"]}) == expected
    for event in report["events"]:
        assert event["answers"] == [200]
        assert event["stored"] == 1
        assert event["same"] is True


def test_the_table_puts_each_event_beside_what_was_stored(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo", "--only", "quick-start", "--only", "stripe-webhook"]) == 0
    out = capsys.readouterr().out
    assert "a local collector is listening on http://127.0.0.1:" in out
    assert "ok      Quick start (1 event)" in out
    assert "ok      Stripe webhook (2 events)" in out
    prefixes = ("quick-start", "stripe-webhook")
    rows = [" ".join(line.split()) for line in out.splitlines() if line.startswith(prefixes)]
    assert rows == [
        "quick-start custom subscription_upgraded user@example.com / cust_123 / acme.com 200 "
        "yes, once",
        "stripe-webhook billing paid cus_NffrFeUfNV2Hib / acme.com 200 yes, once",
        "stripe-webhook billing churned cus_Q2mZ8xLk3Rb7Ta / globex.com 200 yes, once",
    ]
    assert "3 events sent, 3 stored exactly once" in out
    assert "Viewer:" not in out  # the collector has stopped: no link to a viewer that is gone
    assert out.rstrip().endswith("Every event arrived exactly once.")


def _with_scenarios(monkeypatch: pytest.MonkeyPatch, *extra: Scenario) -> None:
    quick_start = next(s for s in SCENARIOS if s.name == "quick-start")
    monkeypatch.setattr(demo_module, "SCENARIOS", (quick_start, *extra))


def _broken(demo: Demo) -> None:
    with Outlit(public_key=demo.public_key, api_host=demo.api_host) as client:
        client.track(event_name="before_the_crash", email="a@acme.com")
        raise RuntimeError("the adapter blew up")


def test_a_failing_scenario_is_reported_and_fails_the_demo(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _with_scenarios(monkeypatch, Scenario("broken", "Broken adapter", _broken, 1))
    assert main(["demo", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert [(s["name"], s["status"]) for s in report["scenarios"]] == [
        ("quick-start", "ok"),
        ("broken", "failed"),
    ]
    assert report["scenarios"][1]["detail"] == "RuntimeError: the adapter blew up"
    # What the broken scenario queued before raising was still flushed and compared.
    assert report["summary"]["stored_once"] == report["summary"]["sent"] == 2


def test_an_adapter_that_is_not_installed_is_skipped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = Scenario(
        "pyramid", "Pyramid adapter", _broken, 1, (("outlit_pyramid_nowhere", "pyramid"),)
    )
    _with_scenarios(monkeypatch, missing)
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert (
        'skipped Pyramid adapter: outlit_pyramid_nowhere is not installed (pip install "outlit[pyramid]")'
        in out
    )
    assert "Scenarios: 1 ok, 1 skipped, 0 failed." in out


def test_a_scenario_sending_the_wrong_number_of_events_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def sends_one(demo: Demo) -> None:
        with Outlit(public_key=demo.public_key, api_host=demo.api_host) as client:
            client.track(event_name="only_one", email="a@acme.com")

    _with_scenarios(monkeypatch, Scenario("short", "Short", sends_one, 2))
    assert main(["demo"]) == 1
    assert "FAILED: Short: expected 2 events, sent 1" in capsys.readouterr().out


def test_an_event_the_demo_never_sent_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def sneaks_one_in(demo: Demo) -> None:
        event = {"type": "custom", "timestamp": 1, "url": "server://x", "path": "/"}
        event.update(eventName="sneaked", email="x@acme.com", uuid="00000000-sneaked")
        response = httpx.post(
            f"{demo.api_host}/api/i/v1/{demo.public_key}/events",
            json={"source": "server", "events": [event]},
        )
        assert response.status_code == 200

    _with_scenarios(monkeypatch, Scenario("sneaky", "Sneaky", sneaks_one_in, 0))
    assert main(["demo"]) == 1
    out = capsys.readouterr().out
    assert "UNEXPECTED: the collector stored custom 'sneaked' email='x@acme.com', never sent" in out
    assert "1 unexpected" in out
    assert out.rstrip().endswith("The demo found problems.")


def test_an_event_delivered_twice_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def delivers_twice(demo: Demo) -> None:
        seen: list[Request] = []

        class Replaying(HTTPTransport):
            # Sends every request twice, as a broken retry would.
            def send(self, request: Request) -> object:  # type: ignore[override]
                seen.append(request)
                super().send(request)
                return super().send(request)

        with Outlit(
            public_key=demo.public_key, api_host=demo.api_host, transport=Replaying()
        ) as client:
            client.track(event_name="twice", email="a@acme.com")
        assert len(seen) == 1

    _with_scenarios(monkeypatch, Scenario("twice", "Twice", delivers_twice, 1))
    assert main(["demo", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["summary"]["duplicates"] == 1
    assert report["summary"]["stored_once"] == report["summary"]["sent"] == 2


@pytest.mark.slow
def test_keep_open_serves_the_viewer_until_ctrl_c() -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OUTLIT_")}
    command = [sys.executable, "-m", "outlit", "demo", "--only", "billing", "--keep-open"]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment
    ) as process:
        try:
            assert process.stdout is not None
            before: list[str] = []
            line = ""
            while "still running" not in line:
                before.append(line)
                line = process.stdout.readline()
                assert line, "the demo ended without keeping the collector open"
            url = line.split("running: ", 1)[1].split()[0].rstrip("/")
            # The report comes before the wait, with the viewer it keeps serving.
            assert "Every event arrived exactly once.\n" in before
            assert f"Viewer: {url}/\n" in before
            assert httpx.get(f"{url}/").status_code == 200
            stored = httpx.get(f"{url}/api/events").json()["events"]
            assert sorted(event["status"] for event in stored) == ["churned", "paid", "trialing"]
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=10) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)


def test_the_fastapi_scenario_prints_no_warning_without_httpx2() -> None:
    # outlit[fastapi] does not install httpx2, which recent Starlette's test client asks for.
    pytest.importorskip("fastapi", reason="the FastAPI scenario needs the outlit[fastapi] extra")
    code = (
        "import sys; sys.modules['httpx2'] = None\n"  # as if httpx2 were not installed
        "from outlit._cli import main\n"
        "sys.exit(main(['demo', '--only', 'fastapi']))\n"
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OUTLIT_")}
    done = subprocess.run(
        [sys.executable, "-W", "default", "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Warning" not in done.stderr, done.stderr
    assert "2 events sent, 2 stored exactly once" in done.stdout
