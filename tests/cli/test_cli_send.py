"""``outlit send``, ``identify``, ``user ...`` and ``customer ...`` against a real collector on
127.0.0.1: what reaches the wire, and the exit code and reason for each outcome."""

from __future__ import annotations

import json
import logging
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest

from outlit._cli import main
from outlit._collector.server import Collector

PUBLIC_KEY = "pk_test_cli_0123456789"


def _send(collector: Collector, *argv: str) -> int:
    return main([*argv, "--public-key", PUBLIC_KEY, "--api-host", collector.url])


def test_send_delivers_and_exits_0(
    collector: Collector, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _send(
        collector,
        "send",
        "--event-name",
        "signup",
        "--email",
        "a@b.co",
        "--user-id",
        "usr_1",
        "--customer-id",
        "cust_1",
        "--customer-domain",
        "acme.com",
        "--fingerprint",
        "dev_1",
        "--property",
        "plan=pro",
        "-p",
        "mrr=99",
        "-p",
        "ok=true",
        "-p",
        'id="42"',
    )
    assert code == 0
    (event,) = collector.wait_for_events(1)
    assert {k: v for k, v in event.items() if k not in ("uuid", "timestamp")} == {
        "type": "custom",
        "url": "server://a@b.co",
        "path": "/",
        "eventName": "signup",
        "email": "a@b.co",
        "userId": "usr_1",
        "customerId": "cust_1",
        "customerDomain": "acme.com",
        "fingerprint": "dev_1",
        "properties": {"plan": "pro", "mrr": 99, "ok": True, "id": "42"},
    }
    out = capsys.readouterr().out
    assert out.startswith("delivered custom 'signup' email='a@b.co'")
    assert f"uuid {event['uuid']}" in out
    assert "HTTP 200" in out


def test_send_json_report_names_the_stored_event(
    collector: Collector, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _send(collector, "send", "-e", "signup", "--email", "a@b.co", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    (stored,) = collector.wait_for_events(1)
    assert report["ok"] is True
    assert report["outcome"] == "delivered"
    assert report["status"] == 200
    assert report["event"] == stored
    assert report["api_host"] == collector.url
    assert PUBLIC_KEY not in json.dumps(report)  # the key is masked


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            [
                "identify",
                "--email",
                "jane@acme.com",
                "--user-id",
                "usr_12345",
                "--customer-domain",
                "acme.com",
                "--trait",
                "name=Jane Doe",
                "--trait",
                "role=admin",
                "--customer-trait",
                "seats=50",
            ],
            {
                "type": "identify",
                "email": "jane@acme.com",
                "userId": "usr_12345",
                "customerDomain": "acme.com",
                "traits": {"name": "Jane Doe", "role": "admin"},
                "customerTraits": {"seats": 50},
            },
        ),
        (
            ["user", "activate", "--email", "user@example.com", "-p", "flow=onboarding"],
            {
                "type": "stage",
                "stage": "activated",
                "properties": {
                    "flow": "onboarding",
                    "__email": "user@example.com",
                    "__userId": None,
                    "__fingerprint": None,
                },
            },
        ),
        (
            ["user", "engaged", "--user-id", "usr_123"],
            {"type": "stage", "stage": "engaged", "url": "server://usr_123"},
        ),
        (
            ["user", "inactive", "--fingerprint", "dev_9"],
            {"type": "stage", "stage": "inactive", "url": "server://dev_9"},
        ),
        (
            ["customer", "trialing", "--customer-id", "cust_123"],
            {"type": "billing", "status": "trialing", "customerId": "cust_123"},
        ),
        (
            ["customer", "paid", "--customer-domain", "acme.com", "-p", "amount=99"],
            {
                "type": "billing",
                "status": "paid",
                "customerDomain": "acme.com",
                "domain": "acme.com",
                "properties": {"amount": 99},
            },
        ),
        (
            ["customer", "churned", "--customer-id", "cust_1", "--stripe-customer-id", "cus_9"],
            {"type": "billing", "status": "churned", "stripeCustomerId": "cus_9"},
        ),
    ],
    ids=lambda value: " ".join(value[:2]) if isinstance(value, list) else "",
)
def test_every_call_reaches_the_collector(
    collector: Collector, argv: list[str], expected: dict[str, Any]
) -> None:
    assert _send(collector, *argv) == 0
    (event,) = collector.wait_for_events(1)
    assert {key: event.get(key) for key in expected} == expected


@pytest.mark.parametrize(
    ("flag", "timestamp"),
    [("1706400000000", 1706400000000), ("2024-01-28T00:00:00Z", 1706400000000)],
)
def test_timestamp_in_milliseconds_or_iso(collector: Collector, flag: str, timestamp: int) -> None:
    assert _send(collector, "send", "-e", "old", "--email", "a@b.co", "--timestamp", flag) == 0
    (event,) = collector.wait_for_events(1)
    assert event["timestamp"] == timestamp


def test_key_and_host_from_the_environment(
    collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OUTLIT_PUBLIC_KEY", PUBLIC_KEY)
    monkeypatch.setenv("OUTLIT_API_HOST", collector.url)
    assert main(["send", "-e", "signup", "--email", "a@b.co"]) == 0
    assert collector.requests[-1].public_key == PUBLIC_KEY


def test_a_refused_key_exits_1_with_the_reason(capsys: pytest.CaptureFixture[str]) -> None:
    log = logging.getLogger("outlit")
    before = (log.level, log.propagate, list(log.handlers))
    with Collector(host="127.0.0.1", port=0, memory=True, status=401) as refusing:
        started = time.monotonic()
        assert _send(refusing, "send", "-e", "signup", "--email", "a@b.co") == 1
        assert time.monotonic() - started < 5  # a refusal is final: no retrying until timeout
    err = capsys.readouterr().err
    assert err.startswith("outlit send: refused: the service refused public key pk_test")
    assert "HTTP 401: Invalid or inactive tracking configuration" in err
    assert PUBLIC_KEY not in err
    # The command silenced the client's own log while it ran, and put the logger back.
    assert (log.level, log.propagate, list(log.handlers)) == before


def test_a_rejected_event_exits_1_with_the_service_message(
    collector: Collector, capsys: pytest.CaptureFixture[str]
) -> None:
    body = {"success": False, "processed": 0, "errors": [{"index": 0, "message": "bad plan"}]}
    collector.script((207, {}, body))
    assert _send(collector, "customer", "paid", "--customer-id", "c1", "--json") == 1
    report = json.loads(capsys.readouterr().out)
    assert report["outcome"] == "refused"
    assert report["status"] == 207
    assert "bad plan" in report["reason"]


def test_an_unreachable_host_exits_3_within_the_timeout(
    closed_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["send", "-e", "signup", "--email", "a@b.co", "--timeout", "1"]
    started = time.monotonic()
    code = main(
        [*argv, "--public-key", PUBLIC_KEY, "--api-host", f"http://127.0.0.1:{closed_port}"]
    )
    elapsed = time.monotonic() - started
    assert code == 3
    assert 0.9 < elapsed < 3
    err = capsys.readouterr().err
    assert err.startswith("outlit send: not delivered: network error:")
    assert "gave up after 1 s" in err


def test_a_slow_answer_within_the_timeout_is_delivered_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # --timeout is the whole wait, one slow request included: a cap below it (the client's
    # default request timeout, made short here so the test is quick) gave up on a request
    # the service answered, said "not delivered", and sent the event a second time.
    import outlit._options

    monkeypatch.setattr(outlit._options, "DEFAULT_TIMEOUT", 0.3)
    with Collector(host="127.0.0.1", port=0, memory=True, latency=0.8) as slow:
        assert _send(slow, "send", "-e", "signup", "--email", "a@b.co", "--timeout", "5") == 0
        assert slow.stats.ingest_requests == 1
        assert slow.stats.events_stored == 1
    assert capsys.readouterr().out.startswith("delivered custom 'signup'")


def test_an_unavailable_service_exits_3_naming_the_status(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with Collector(host="127.0.0.1", port=0, memory=True, status=503) as unavailable:
        assert _send(unavailable, "user", "engaged", "--user-id", "u1", "--timeout", "1") == 3
        assert unavailable.stats.ingest_requests >= 1
    assert "not delivered: HTTP 503: Service unavailable" in capsys.readouterr().err


def test_verbose_shows_the_client_log(capsys: pytest.CaptureFixture[str]) -> None:
    with Collector(host="127.0.0.1", port=0, memory=True, status=401) as refusing:
        assert _send(refusing, "send", "-e", "signup", "--email", "a@b.co", "-v") == 1
    err = capsys.readouterr().err
    assert "ERROR outlit: the service refused public key" in err


def test_send_from_a_separate_process(
    collector: Collector, run_outlit: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    result = run_outlit(
        "send",
        "-e",
        "signup",
        "--email",
        "a@b.co",
        OUTLIT_PUBLIC_KEY=PUBLIC_KEY,
        OUTLIT_API_HOST=collector.url,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("delivered custom 'signup'")
    assert collector.wait_for_events(1)[0]["eventName"] == "signup"
