"""The core sections of README.md, run as written against a real local collector on 127.0.0.1:
the code blocks are read from the README itself (see tests/conftest.py), every event they send
must be stored, and every ingest body must satisfy the service's OpenAPI description.

What a block leaves to the reader (the ``outlit`` client of the API reference, the app's own
``upgrade_subscription`` or ``metrics``) is defined before it runs. Blocks not run, and why:
the one under "Transports" (it needs a proxy, a CA file and httpx's http2/socks extras), and
those of the framework and testing sections, which have tests of their own.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from outlit import ClientStats, Outlit, signals
from outlit._collector.server import Collector

try:
    from ._helpers import assert_valid_body
except ImportError:  # run without the package layout
    from _helpers import assert_valid_body

Run = Callable[..., types.ModuleType]


@pytest.fixture
def host(collector: Collector, monkeypatch: pytest.MonkeyPatch) -> Collector:
    """The collector, as the host of every client the blocks make with the default host
    (OUTLIT_API_HOST, as a user points the SDK at ``outlit dev``)."""
    monkeypatch.setenv("OUTLIT_API_HOST", collector.url)
    monkeypatch.setenv("OUTLIT_PUBLIC_KEY", "pk_readme")  # the serverless examples' key
    return collector


@pytest.fixture
def clients() -> Iterator[list[Outlit]]:
    """Clients a block made, shut down after the test."""
    made: list[Outlit] = []
    yield made
    for client in made:
        client.shutdown(timeout=2)


def stored(collector: Collector) -> list[dict[str, Any]]:
    """Every stored event, oldest first, after checking every ingest body against the spec."""
    for request in collector.requests:
        assert request.status == 200, (request.status, request.body)
        assert_valid_body(request.body)
    return list(reversed(collector.events(limit=1000)))


def names(events: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    """(type, name) of each event: the event name, stage or billing status."""
    return [(e["type"], e.get("eventName") or e.get("stage") or e.get("status")) for e in events]


def test_quick_start_delivers_its_event_by_the_flush(
    host, readme_blocks, run_readme_block, clients
):
    (source,) = readme_blocks(["## Quick start"])
    module = run_readme_block("readme_quick_start", source)
    clients.append(module.outlit)

    # The block ends with flush(): the event is stored already, without waiting.
    (event,) = stored(host)
    assert event["eventName"] == "subscription_upgraded"
    assert event["email"] == "user@example.com"
    assert (event["customerId"], event["customerDomain"]) == ("cust_123", "acme.com")
    assert event["properties"] == {"fromPlan": "starter", "toPlan": "pro", "mrr": 99}


def test_configuration_sets_the_options_it_names(readme_blocks, run_readme_block, clients):
    (source,) = readme_blocks(["## Configuration"])
    module = run_readme_block("readme_configuration", source, Outlit=Outlit)
    clients.append(module.outlit)

    options = module.outlit.options
    assert options.public_key == "pk_xxx"
    assert options.api_host == "https://app.outlit.ai"
    assert (options.flush_interval, options.max_batch_size, options.timeout) == (10.0, 100, 10.0)
    # Nothing was tracked, so nothing was sent anywhere (the worker starts on first use).
    assert module.outlit.stats.enqueued == 0


API_SECTIONS = [
    "### `outlit.track(...)`",
    "### `outlit.identify(...)`",
    "### Contact stages: `outlit.user.activate / engaged / inactive`",
    "### Account billing: `outlit.customer.trialing / paid / churned`",
]


def test_api_reference_calls_are_accepted_by_the_service(
    host, readme_blocks, run_readme_block, clients
):
    outlit = Outlit(public_key="pk_readme")
    clients.append(outlit)
    for number, heading in enumerate(API_SECTIONS):
        (source,) = readme_blocks(["## API reference", heading])
        run_readme_block(f"readme_api_{number}", source, outlit=outlit)
    assert outlit.flush(timeout=5)

    events = stored(host)
    assert names(events) == [
        ("custom", "report_exported"),
        ("identify", None),
        ("stage", "activated"),
        ("stage", "engaged"),
        ("stage", "inactive"),
        ("billing", "trialing"),
        ("billing", "paid"),
        ("billing", "churned"),
    ]
    exported, identified = events[0], events[1]
    assert exported["timestamp"] == 1706400000000
    assert exported["userId"] == "usr_12345"
    assert identified["traits"] == {"name": "Jane Doe", "role": "admin"}
    assert identified["customerTraits"] == {"plan": "enterprise", "seats": 50}


def test_logging_block_turns_on_debug_logging(readme_blocks, run_readme_block):
    blocks = readme_blocks(["## Logging, signals and counters"])
    assert len(blocks) == 2
    logger = logging.getLogger("outlit")
    level = logger.level
    try:
        logger.setLevel(logging.WARNING)
        run_readme_block("readme_logging", blocks[0])
        assert logger.level == logging.DEBUG
    finally:
        logger.setLevel(level)


def test_signals_block_counts_drops(host, readme_blocks, run_readme_block, clients):
    source = readme_blocks(["## Logging, signals and counters"])[1]
    counted: list[tuple[str, int, dict[str, str]]] = []
    metrics = types.SimpleNamespace(
        increment=lambda name, value, tags: counted.append((name, value, tags))
    )
    module = run_readme_block("readme_signals", source, metrics=metrics)
    try:
        host.script(401)  # the service refuses the key: every queued event is dropped
        outlit = Outlit(public_key="pk_readme")
        clients.append(outlit)
        outlit.track(event_name="report_exported", email="jane@acme.com")
        outlit.track(event_name="report_exported", email="joe@acme.com")
        outlit.flush(timeout=5)
    finally:
        signals.events_dropped.disconnect(module.on_dropped)
    assert counted == [("outlit.dropped", 2, {"reason": "invalid_key"})]


def test_error_handling_block_prints_the_counters(
    host, readme_blocks, run_readme_block, clients, capsys
):
    (source,) = readme_blocks(["## Error handling"])
    outlit = Outlit(public_key="pk_readme")
    clients.append(outlit)
    warnings = logging.getLogger("readme.app")
    run_readme_block("readme_errors", source, outlit=outlit, logger=warnings)

    printed = capsys.readouterr().out
    assert printed.startswith("ClientStats(") and "enqueued=1" in printed
    assert outlit.flush(timeout=5)
    assert names(stored(host)) == [("custom", "test")]
    assert isinstance(outlit.stats, ClientStats)


def test_async_block_delivers_its_event(host, readme_blocks, run_readme_block):
    (source,) = readme_blocks(["## Async code"])
    # Its key is the README's placeholder, which the collector refuses as the service would.
    assert '"pk_..."' in source
    source = source.replace('"pk_..."', '"pk_readme"')
    # The block is the body of a coroutine (``async with`` needs one): run it as such.
    body = "".join(f"    {line}\n" for line in source.splitlines())
    module = run_readme_block("readme_async", f"async def main():\n{body}", Outlit=Outlit)

    asyncio.run(module.main())
    assert names(stored(host)) == [("custom", "signed_in")]


def test_serverless_handler_has_sent_its_event_when_it_returns(
    host, readme_blocks, run_readme_block, clients
):
    (source,) = readme_blocks(["## Serverless functions (AWS Lambda, Vercel, Cloud Run jobs)"])
    module = run_readme_block("readme_lambda", source)
    clients.append(module.outlit)

    body = json.dumps({"email": "jane@acme.com", "action": "report_exported"})
    answer = module.handler({"body": body}, None)

    assert answer == {"statusCode": 200, "body": "OK"}
    # Stored before the handler returned: nothing waits here.
    (event,) = stored(host)
    assert (event["eventName"], event["email"]) == ("report_exported", "jane@acme.com")
    assert event["properties"] == {"source": "lambda"}


def test_api_route_tracks_and_bills_before_answering(
    host, readme_blocks, run_readme_block, clients
):
    (source,) = readme_blocks(["## Next.js-style API route, in Python"])
    upgraded: list[tuple[str, str]] = []
    module = run_readme_block(
        "readme_route",
        source,
        Outlit=Outlit,
        upgrade_subscription=lambda user_id, plan: upgraded.append((user_id, plan)),
    )
    clients.append(module.outlit)

    answer = module.upgrade("42", "jane@acme.com", "pro", 99, "acme.com")

    assert answer == {"success": True}
    assert upgraded == [("42", "pro")]
    upgrade, paid = stored(host)
    assert (upgrade["eventName"], upgrade["customerId"]) == ("subscription_upgraded", "cust_42")
    assert (paid["status"], paid["customerDomain"]) == ("paid", "acme.com")
    assert paid["properties"] == {"plan": "pro", "amount": 99}


def test_stripe_webhook_marks_paid_and_churned(
    host, readme_blocks, run_readme_block, clients, monkeypatch
):
    # Real stripe.Event objects, as stripe.Webhook.construct_event makes them from a signed
    # payload (no network): since stripe-python 15 they are not dicts.
    stripe = pytest.importorskip("stripe", reason="stripe is in the dev extra")
    (source,) = readme_blocks(["## Stripe webhooks"])
    domains = {"cus_1": "acme.com"}
    module = run_readme_block("readme_stripe", source, get_account_domain=domains.get)
    clients.append(module.outlit)

    def webhook(event_type: str, obj: dict[str, Any]) -> Any:
        secret = "whsec_test"
        payload = json.dumps(
            {"id": "evt_1", "object": "event", "type": event_type, "data": {"object": obj}}
        )
        stamp = int(time.time())
        signature = stripe.WebhookSignature._compute_signature(f"{stamp}.{payload}", secret)
        return stripe.Webhook.construct_event(payload, f"t={stamp},v1={signature}", secret)

    session = {"object": "checkout.session", "customer": "cus_1", "amount_total": 9900}
    module.handle_stripe_webhook(
        webhook("checkout.session.completed", {**session, "currency": "usd"})
    )
    module.handle_stripe_webhook(  # an expanded customer object; no cancellation details
        webhook(
            "customer.subscription.deleted",
            {"object": "subscription", "customer": {"id": "cus_1", "object": "customer"}},
        )
    )
    module.handle_stripe_webhook(  # a customer with no account: nothing to send
        webhook("customer.subscription.deleted", {"object": "subscription", "customer": "cus_9"})
    )

    paid, churned = stored(host)
    assert (paid["status"], paid["customerId"], paid["customerDomain"]) == (
        "paid",
        "cus_1",
        "acme.com",
    )
    assert paid["properties"] == {"amount": 99.0, "currency": "usd"}
    assert churned["status"] == "churned"
    assert churned["properties"] == {"reason": None}


def test_celery_task_tracks_with_its_job_id(host, readme_blocks, run_readme_block, clients):
    pytest.importorskip("celery", reason="celery is in the dev extra")
    source = readme_blocks(["## Background jobs (Celery, RQ, Dramatiq)"])[0]  # then RQ's
    delivered: list[tuple[str, str]] = []
    module = run_readme_block(
        "readme_celery", source, deliver=lambda email, template: delivered.append((email, template))
    )
    clients.append(module.outlit)
    module.app.conf.task_always_eager = True  # run in this process, as celery's tests do

    result = module.send_email.delay("jane@acme.com", "welcome")

    assert result.successful()
    assert delivered == [("jane@acme.com", "welcome")]
    assert module.outlit.flush(timeout=5)
    (event,) = stored(host)
    assert event["eventName"] == "email_sent"
    assert event["properties"] == {"templateId": "welcome", "jobId": result.id}


def test_typing_block_runs(host, readme_blocks, run_readme_block, clients):
    (source,) = readme_blocks(["## Typing"])
    module = run_readme_block("readme_typing", source)
    clients.append(module.outlit)

    assert module.outlit.options.flush_interval == 5.0
    assert module.outlit.flush(timeout=5)
    assert names(stored(host)) == [("custom", "test"), ("stage", "activated"), ("billing", "paid")]


def test_typing_block_type_checks(readme_blocks, tmp_path):
    api = pytest.importorskip("mypy.api", reason="mypy is in the dev extra")
    (source,) = readme_blocks(["## Typing"])
    (tmp_path / "readme_typing.py").write_text(source, encoding="utf-8")
    # Beside it, the same options with a misspelled key: mypy must catch it.
    misspelled = source.replace('"event_name": "test"', '"eventName": "test"')
    assert misspelled != source
    (tmp_path / "readme_typo.py").write_text(misspelled, encoding="utf-8")

    out, err, _status = api.run(
        ["--strict", "--no-incremental", "--cache-dir", str(tmp_path / "cache"), str(tmp_path)]
    )

    reported = [line for line in out.splitlines() if ": error:" in line]
    assert reported, out + err
    assert all(line.startswith(str(tmp_path / "readme_typo.py")) for line in reported), out
    assert any('"eventName"' in line for line in reported), out


def test_collector_in_tests_examples_pass(readme_blocks, run_readme_block):
    (source,) = readme_blocks(["## See your events locally: `outlit dev`", "### In tests"])
    module = run_readme_block("readme_collector_tests", source)
    tests = [value for name, value in vars(module).items() if name.startswith("test_")]
    assert len(tests) == 2
    for test in tests:
        test()
