"""``outlit demo``: the Node SDK documentation's scenarios, played through this SDK end to end.

A local collector runs in this process on a free 127.0.0.1 port. Each scenario is the seed's
example written the Python way (the framework ones through our adapters, when installed); every
client they create is watched from the moment it is constructed, so the report can put each event
sent beside what the collector stored, matched by ``uuid``.
"""

from __future__ import annotations

import io
import json
import queue
import sys
import threading
import time
import types
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib.util import find_spec
from typing import Any

from outlit._client import Outlit
from outlit.testing import (
    _on_new_clients,
    _transport_of,
    _use_transport,
    describe_event,
    event_identity,
)

PUBLIC_KEY = "pk_demo_local"
#: How long the demo waits for one client's flush (seconds); a local collector answers in ms.
FLUSH_TIMEOUT = 10.0


class ScenarioSkipped(Exception):
    """Raised by a scenario that cannot run here (the reason is shown, it is not a failure)."""


@dataclass(frozen=True)
class Demo:
    """What a scenario needs: the key and host its clients use (the seed reads them from env)."""

    public_key: str
    api_host: str


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    run: Callable[[Demo], None]
    #: Events the scenario must send; fewer or more is reported as a failure.
    expected_events: int
    #: Modules that must be importable, each with the pip extra that provides it.
    requires: tuple[tuple[str, str], ...] = ()


# -- the scenarios: the seed's examples, in Python ------------------------------------


def quick_start(demo: Demo) -> None:
    outlit = Outlit(public_key=demo.public_key, api_host=demo.api_host)
    outlit.track(
        email="user@example.com",
        customer_id="cust_123",
        customer_domain="acme.com",
        event_name="subscription_upgraded",
        properties={"fromPlan": "starter", "toPlan": "pro", "mrr": 99},
    )
    # Important: flush before the process exits.
    outlit.flush()


def track_and_identify(demo: Demo) -> None:
    outlit = Outlit(public_key=demo.public_key, api_host=demo.api_host)
    outlit.track(
        email="jane@acme.com",
        user_id="usr_12345",
        customer_id="cust_123",
        customer_domain="acme.com",
        event_name="report_exported",
        properties={"reportType": "sales", "format": "pdf", "rowCount": 1500},
        timestamp=int(time.time() * 1000),
    )
    outlit.identify(
        email="jane@acme.com",
        user_id="usr_12345",
        customer_id="cust_123",
        customer_domain="acme.com",
        customer_traits={"plan": "enterprise", "seats": 50},
        traits={"name": "Jane Doe", "role": "admin"},
    )
    outlit.flush()


def contact_stages(demo: Demo) -> None:
    outlit = Outlit(public_key=demo.public_key, api_host=demo.api_host)
    outlit.user.activate(email="user@example.com", properties={"flow": "onboarding"})
    outlit.user.engaged(user_id="usr_123", properties={"milestone": "first_project_created"})
    outlit.user.inactive(email="user@example.com", properties={"reason": "no_login_30_days"})
    outlit.flush()


def account_billing(demo: Demo) -> None:
    outlit = Outlit(public_key=demo.public_key, api_host=demo.api_host)
    outlit.customer.trialing(
        customer_domain="acme.com",
        customer_id="cust_123",
        properties={"trialEndsAt": "2024-02-15"},
    )
    outlit.customer.paid(
        customer_domain="acme.com", customer_id="cust_123", properties={"plan": "pro", "amount": 99}
    )
    outlit.customer.churned(
        customer_domain="acme.com",
        customer_id="cust_123",
        properties={"reason": "cancelled_by_user"},
    )
    outlit.flush()


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def express_style_export(demo: Demo) -> None:
    """The Express example as a plain WSGI app: a middleware hands every request the client."""
    outlit = Outlit(public_key=demo.public_key, api_host=demo.api_host)

    def attach_tracker(app: WSGIApp) -> WSGIApp:
        def middleware(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            environ["outlit"] = outlit
            return app(environ, start_response)

        return middleware

    def export_report(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.loads(environ["wsgi.input"].read(length))
        report = _generate_report(body["format"])
        environ["outlit"].track(
            email=body["user"]["email"],
            event_name="report_exported",
            properties={"format": body["format"], "size": report["size"]},
        )
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"success": true}']

    app = attach_tracker(export_report)
    status = _call_wsgi(
        app, "/api/reports/export", {"user": {"email": "jane@acme.com"}, "format": "csv"}
    )
    if not status.startswith("200"):
        raise RuntimeError(f"the export route answered {status}")
    # What the example's SIGTERM handler does: flush what is queued and stop the worker.
    outlit.shutdown()


def nextjs_upgrade_route(demo: Demo) -> None:
    """The Next.js API route: track the upgrade, update billing, flush before answering."""
    outlit = Outlit(public_key=demo.public_key, api_host=demo.api_host)

    def post(request_body: bytes) -> dict[str, Any]:
        payload = json.loads(request_body)
        user_id, email, new_plan = payload["userId"], payload["email"], payload["newPlan"]
        amount, domain = payload["amount"], payload["domain"]
        # (the app's own upgrade logic would run here)
        outlit.track(
            email=email,
            user_id=user_id,
            customer_id=f"cust_{user_id}",
            customer_domain=domain,
            event_name="subscription_upgraded",
            properties={"plan": new_plan},
        )
        outlit.customer.paid(
            customer_domain=domain,
            customer_id=f"cust_{user_id}",
            properties={"plan": new_plan, "amount": amount},
        )
        # Flush immediately: a serverless function may be frozen right after it answers.
        outlit.flush()
        return {"success": True}

    post(
        json.dumps(
            {
                "userId": "usr_789",
                "email": "sam@globex.com",
                "newPlan": "pro",
                "amount": 99,
                "domain": "globex.com",
            }
        ).encode()
    )


def serverless_handler(demo: Demo) -> None:
    """The AWS Lambda / Vercel handler: always flush before returning."""
    outlit = Outlit(public_key=demo.public_key, api_host=demo.api_host)

    def handler(event: dict[str, Any]) -> dict[str, Any]:
        body = json.loads(event["body"])
        outlit.track(
            email=body["email"], event_name=body["action"], properties={"source": "lambda"}
        )
        outlit.flush()
        return {"statusCode": 200, "body": "OK"}

    handler({"body": json.dumps({"email": "lee@initech.com", "action": "invoice_downloaded"})})


# Stands in for the app's database lookup in the Stripe example.
_ACCOUNT_DOMAINS = {"cus_NffrFeUfNV2Hib": "acme.com", "cus_Q2mZ8xLk3Rb7Ta": "globex.com"}


def stripe_webhook(demo: Demo) -> None:
    """The Stripe webhook example, fed fake events shaped like Stripe's."""
    outlit = Outlit(public_key=demo.public_key, api_host=demo.api_host)

    def handle_stripe_webhook(event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "checkout.session.completed":
            session = event["data"]["object"]
            customer_id = _stripe_id(session.get("customer"))
            domain = _ACCOUNT_DOMAINS.get(customer_id) if customer_id else None
            if customer_id and domain:
                amount_total = session.get("amount_total")
                outlit.customer.paid(
                    customer_domain=domain,
                    customer_id=customer_id,
                    properties=_defined(
                        amount=amount_total / 100 if amount_total else None,
                        currency=session.get("currency"),
                    ),
                )
        elif kind == "customer.subscription.deleted":
            subscription = event["data"]["object"]
            customer_id = _stripe_id(subscription.get("customer"))
            domain = _ACCOUNT_DOMAINS.get(customer_id) if customer_id else None
            if customer_id and domain:
                details = subscription.get("cancellation_details") or {}
                outlit.customer.churned(
                    customer_domain=domain,
                    customer_id=customer_id,
                    properties=_defined(reason=details.get("reason")),
                )
        outlit.flush()

    # `customer` is an id string in one event and an expanded object in the other, as Stripe
    # sends either; the event without a customer and the unhandled type send nothing.
    for event in (
        {
            "id": "evt_1",
            "type": "checkout.session.completed",
            "data": {
                "object": {
                    "object": "checkout.session",
                    "customer": "cus_NffrFeUfNV2Hib",
                    "amount_total": 9900,
                    "currency": "usd",
                }
            },
        },
        {
            "id": "evt_2",
            "type": "checkout.session.completed",
            "data": {"object": {"object": "checkout.session", "customer": None}},
        },
        {
            "id": "evt_3",
            "type": "customer.subscription.deleted",
            "data": {
                "object": {
                    "object": "subscription",
                    "customer": {"id": "cus_Q2mZ8xLk3Rb7Ta", "object": "customer"},
                    "cancellation_details": {"reason": "cancellation_requested"},
                }
            },
        },
        {"id": "evt_4", "type": "invoice.created", "data": {"object": {"object": "invoice"}}},
    ):
        handle_stripe_webhook(event)


def background_jobs(demo: Demo) -> None:
    """The Bull/Agenda example: a worker thread tracks each job; nothing flushes per job."""
    outlit = Outlit(public_key=demo.public_key, api_host=demo.api_host)
    jobs: queue.Queue[dict[str, Any] | None] = queue.Queue()

    def work() -> None:
        while (job := jobs.get()) is not None:
            # (the job's own work, sending the email, would run here)
            outlit.track(
                email=job["email"],
                event_name="email_sent",
                properties={"templateId": job["templateId"], "jobId": job["id"]},
            )

    worker = threading.Thread(target=work, name="outlit-demo-email-jobs")
    worker.start()
    for number, email in enumerate(("ana@acme.com", "bo@globex.com", "cy@initech.com"), 1):
        jobs.put({"id": f"job_{number}", "email": email, "templateId": "welcome"})
    jobs.put(None)
    worker.join()
    # Events batch and flush on their own every flush_interval; the demo flushes now only so
    # that its report does not wait ten seconds.
    outlit.flush()


def flask_adapter(demo: Demo) -> None:
    from flask import Flask, g, jsonify, request

    from outlit_flask import Outlit as FlaskOutlit  # type: ignore[import-not-found,unused-ignore]

    app = Flask("outlit_demo")
    app.config.update(OUTLIT_PUBLIC_KEY=demo.public_key, OUTLIT_API_HOST=demo.api_host)
    outlit = FlaskOutlit(app)

    @app.post("/api/reports/export")
    def export() -> Any:
        body = request.get_json()
        g.outlit.track(  # request-bound tracker
            email=body["email"],
            event_name="report_exported",
            properties={"format": body["format"]},
        )
        outlit.track(  # the app-wide client, usable outside a request too
            email=body["email"], event_name="export_queue_checked", properties={"depth": 0}
        )
        return jsonify(success=True)

    with app.test_client() as http:
        response = http.post(
            "/api/reports/export", json={"email": "flo@acme.com", "format": "xlsx"}
        )
    if response.status_code != 200:
        raise RuntimeError(f"the Flask route answered {response.status_code}")


def fastapi_adapter(demo: Demo) -> None:
    from fastapi import Depends, FastAPI

    with warnings.catch_warnings():
        # Recent Starlette asks its test client for httpx2, which outlit[fastapi] does not
        # install; on httpx the client works the same, so the demo does not print that warning.
        warnings.filterwarnings("ignore", message=".*starlette.testclient.*httpx2")
        from fastapi.testclient import TestClient

    from outlit_fastapi import (  # type: ignore[import-not-found,unused-ignore]
        Outlit as FastAPIOutlit,
    )

    outlit = FastAPIOutlit(public_key=demo.public_key, api_host=demo.api_host)
    app = FastAPI(lifespan=outlit.lifespan)

    @app.post("/api/subscription/upgrade")
    async def upgrade(
        payload: dict[str, Any],
        tracker: Any = Depends(outlit),
    ) -> dict[str, bool]:
        tracker.track(
            email=payload["email"],
            customer_domain=payload["domain"],
            event_name="subscription_upgraded",
            properties={"plan": payload["plan"]},
        )
        tracker.customer.paid(customer_domain=payload["domain"], properties={"plan": "pro"})
        return {"success": True}

    # Entering the TestClient runs the lifespan, so leaving it flushes and shuts the client down.
    with TestClient(app) as http:
        response = http.post(
            "/api/subscription/upgrade",
            json={"email": "fay@initech.com", "domain": "initech.com", "plan": "pro"},
        )
    if response.status_code != 200:
        raise RuntimeError(f"the FastAPI route answered {response.status_code}: {response.text}")


def django_adapter(demo: Demo) -> None:
    import django  # type: ignore[import-untyped,unused-ignore]
    from django.conf import settings  # type: ignore[import-untyped,unused-ignore]

    if settings.configured:
        # settings.configure() works once per process; reusing someone else's settings would
        # not be this demo any more.
        raise ScenarioSkipped("Django settings are already configured in this process")
    urls = types.ModuleType("outlit_demo_django_urls")
    sys.modules[urls.__name__] = urls
    settings.configure(
        DEBUG=False,
        SECRET_KEY="outlit-demo-not-a-secret",
        ALLOWED_HOSTS=["testserver"],
        ROOT_URLCONF=urls.__name__,
        INSTALLED_APPS=["outlit_django"],
        MIDDLEWARE=["outlit_django.middleware.OutlitMiddleware"],
        OUTLIT={"PUBLIC_KEY": demo.public_key, "API_HOST": demo.api_host},
        DATABASES={},
        USE_TZ=True,
    )
    django.setup()
    from django.http import JsonResponse  # type: ignore[import-untyped,unused-ignore]
    from django.test import Client  # type: ignore[import-untyped,unused-ignore]
    from django.urls import path  # type: ignore[import-untyped,unused-ignore]

    from outlit_django import outlit  # type: ignore[import-not-found,unused-ignore]

    def export_report(request: Any) -> Any:
        body = json.loads(request.body)
        request.outlit.track(
            email=body["email"],
            event_name="report_exported",
            properties={"format": body["format"]},
        )
        # The app-wide client works anywhere: signals, tasks, management commands.
        outlit.user.activate(email=body["email"], properties={"flow": "first_export"})
        return JsonResponse({"success": True})

    urls.urlpatterns = [path("api/reports/export", export_report)]  # type: ignore[attr-defined]
    response = Client().post(
        "/api/reports/export",
        data=json.dumps({"email": "dan@globex.com", "format": "pdf"}),
        content_type="application/json",
    )
    if response.status_code != 200:
        raise RuntimeError(f"the Django view answered {response.status_code}")


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("quick-start", "Quick start", quick_start, 1),
    Scenario(
        "track-identify", "track() and identify() with customer traits", track_and_identify, 2
    ),
    Scenario("stages", "user.activate / engaged / inactive", contact_stages, 3),
    Scenario("billing", "customer.trialing / paid / churned", account_billing, 3),
    Scenario("express-export", "Express-style export route (WSGI)", express_style_export, 1),
    Scenario("nextjs-upgrade", "Next.js upgrade route", nextjs_upgrade_route, 2),
    Scenario("serverless", "Serverless handler", serverless_handler, 1),
    Scenario("stripe-webhook", "Stripe webhook", stripe_webhook, 2),
    Scenario("background-job", "Background jobs", background_jobs, 3),
    Scenario(
        "flask",
        "Flask adapter",
        flask_adapter,
        2,
        (("flask", "flask"), ("outlit_flask", "flask")),
    ),
    Scenario(
        "fastapi",
        "FastAPI adapter",
        fastapi_adapter,
        2,
        (("fastapi", "fastapi"), ("httpx", "fastapi"), ("outlit_fastapi", "fastapi")),
    ),
    Scenario(
        "django",
        "Django adapter",
        django_adapter,
        2,
        (("django", "django"), ("outlit_django", "django")),
    ),
)


def _generate_report(format: str) -> dict[str, Any]:
    return {"format": format, "size": 48_213}


def _call_wsgi(app: WSGIApp, path: str, payload: Any) -> str:
    """Call a WSGI app the way a server would, without a socket."""
    from wsgiref.util import setup_testing_defaults

    body = json.dumps(payload).encode()
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    setup_testing_defaults(environ)
    answered: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        answered.append(status)
        return lambda data: None

    b"".join(app(environ, start_response))
    return answered[0]


def _stripe_id(value: Any) -> str | None:
    """Stripe sends a related object as its id, or expanded as an object carrying ``id``."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        found = value.get("id")
        return found if isinstance(found, str) else None
    return None


def _defined(**values: Any) -> dict[str, Any]:
    # JSON.stringify leaves out `undefined` properties; None plays that part here.
    return {key: value for key, value in values.items() if value is not None}


# -- running them -------------------------------------------------------------------


@dataclass
class ScenarioResult:
    name: str
    title: str
    status: str  # "ok", "skipped" or "failed"
    detail: str | None = None
    events: int = 0


@dataclass
class EventRow:
    """One event sent, beside what the collector stored under its uuid."""

    scenario: str
    uuid: str
    event: dict[str, Any]
    answers: list[int] = field(default_factory=list)  # HTTP status of each request carrying it
    stored: int = 0
    same: bool = False  # the stored event equals the one sent

    @property
    def acknowledged(self) -> int:
        """How many times the collector accepted it (a retry after a failure is not a second)."""
        return sum(1 for status in self.answers if 200 <= status < 300)

    @property
    def ok(self) -> bool:
        return self.stored == 1 and self.same and self.acknowledged == 1


@dataclass
class DemoReport:
    collector_url: str
    scenarios: list[ScenarioResult]
    rows: list[EventRow]
    unexpected: list[dict[str, Any]]  # stored, but never sent by the demo
    duplicates: int  # deliveries the collector recognised as already stored
    refused: int  # events the collector refused (207) or requests it did not accept

    @property
    def viewer_url(self) -> str:
        return self.collector_url + "/"

    @property
    def summary(self) -> dict[str, int]:
        return {
            "sent": len(self.rows),
            "stored_once": sum(1 for row in self.rows if row.ok),
            "missing": sum(1 for row in self.rows if row.stored == 0),
            "changed": sum(1 for row in self.rows if row.stored and not row.same),
            "acknowledged_twice": sum(1 for row in self.rows if row.acknowledged > 1),
            "duplicates": self.duplicates,
            "unexpected": len(self.unexpected),
            "refused": self.refused,
            "failed_scenarios": sum(1 for s in self.scenarios if s.status == "failed"),
        }

    @property
    def ok(self) -> bool:
        summary = self.summary
        return (
            bool(self.rows)
            and summary["stored_once"] == summary["sent"]
            and all(summary[k] == 0 for k in ("duplicates", "unexpected", "refused"))
            and summary["failed_scenarios"] == 0
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "collector": self.collector_url,
            "viewer": self.viewer_url,
            "summary": self.summary,
            "scenarios": [vars(result) for result in self.scenarios],
            "events": [
                {
                    "scenario": row.scenario,
                    "uuid": row.uuid,
                    "type": row.event.get("type"),
                    "label": _label(row.event),
                    "identity": event_identity(row.event),
                    "answers": row.answers,
                    "stored": row.stored,
                    "same": row.same,
                    "ok": row.ok,
                }
                for row in self.rows
            ],
            "unexpected": self.unexpected,
        }


class _TeeTransport:
    """Sends through the client's own transport and notes each event with its answer."""

    def __init__(self, inner: Any, scenario: str, log: list[tuple[str, dict[str, Any], int]]):
        self._inner = inner
        self._scenario = scenario
        self._log = log
        self._lock = threading.Lock()

    def send(self, request: Any) -> Any:
        response = self._inner.send(request)
        with self._lock:
            for event in request.json()["events"]:
                self._log.append((self._scenario, event, response.status_code))
        return response

    def close(self) -> None:
        self._inner.close()


def run_demo(
    *,
    only: Sequence[str] = (),
    before_close: Callable[[str, DemoReport], None] | None = None,
    progress: Callable[[str], None] | None = None,
) -> DemoReport:
    """Play the scenarios (all, or those named in ``only``) and compare sent with stored.

    ``before_close(url, report)`` runs after the comparison, while the collector still serves.
    """
    from outlit._collector.server import Collector

    selected = [s for s in SCENARIOS if not only or s.name in only]
    log: list[tuple[str, dict[str, Any], int]] = []
    made: list[Outlit] = []
    results: list[ScenarioResult] = []
    current = [""]

    def watch(client: Outlit) -> None:
        _use_transport(client, _TeeTransport(_transport_of(client), current[0], log))
        made.append(client)

    with Collector(host="127.0.0.1", port=0, memory=True) as collector:
        demo = Demo(PUBLIC_KEY, collector.url)
        if progress is not None:
            progress(f"Outlit demo: a local collector is listening on {collector.url}")
        with _on_new_clients(watch):
            for scenario in selected:
                current[0] = scenario.name
                result = _play(scenario, demo, made, log)
                results.append(result)
                if progress is not None:
                    progress(f"  {result.status:<7} {scenario.title}" + _suffix(result))
        for client in made:
            client.shutdown(timeout=FLUSH_TIMEOUT)
        report = _compare(collector, results, log)
        if before_close is not None:
            before_close(collector.url, report)
    return report


def _play(
    scenario: Scenario,
    demo: Demo,
    made: list[Outlit],
    log: list[tuple[str, dict[str, Any], int]],
) -> ScenarioResult:
    result = ScenarioResult(scenario.name, scenario.title, "ok")
    for module, extra in scenario.requires:
        if find_spec(module) is None:
            result.status = "skipped"
            result.detail = f'{module} is not installed (pip install "outlit[{extra}]")'
            return result
    first_client = len(made)
    try:
        scenario.run(demo)
    except ScenarioSkipped as exc:
        result.status, result.detail = "skipped", str(exc)
    except Exception as exc:  # one broken scenario must not hide the others' results
        result.status, result.detail = "failed", f"{type(exc).__name__}: {exc}"
    finally:
        # Scenarios flush as the seed's examples do; this catches one that forgot, so the
        # comparison below sees everything it queued.
        for client in made[first_client:]:
            if not client.closed:
                client.flush(FLUSH_TIMEOUT)
    result.events = len({event.get("uuid") for name, event, _ in log if name == scenario.name})
    if result.status == "ok" and result.events != scenario.expected_events:
        result.status = "failed"
        result.detail = f"expected {scenario.expected_events} events, sent {result.events}"
    return result


def _compare(
    collector: Any,
    results: list[ScenarioResult],
    log: list[tuple[str, dict[str, Any], int]],
) -> DemoReport:
    rows: dict[str, EventRow] = {}
    for scenario, event, status in log:
        uuid = str(event.get("uuid"))
        row = rows.setdefault(uuid, EventRow(scenario, uuid, event))
        row.answers.append(status)
    stored = collector.store.events(limit=max(10_000, 2 * len(rows)))
    counts = Counter(item.uuid for item in stored)
    unexpected: list[dict[str, Any]] = []
    for item in stored:
        match = rows.get(str(item.uuid))
        if match is None:
            unexpected.append(item.event)
            continue
        match.stored = counts[item.uuid]
        match.same = item.event == match.event
    stats = collector.stats
    refused_requests = sum(1 for request in collector.requests if request.status not in (200, 207))
    return DemoReport(
        collector_url=collector.url,
        scenarios=results,
        rows=list(rows.values()),
        unexpected=unexpected,
        duplicates=stats.duplicates,
        refused=stats.events_rejected + refused_requests,
    )


# -- the report ---------------------------------------------------------------------


def _label(event: dict[str, Any]) -> str:
    key = {"custom": "eventName", "stage": "stage", "billing": "status"}.get(str(event.get("type")))
    return str(event.get(key, "")) if key else ""


def _identity_text(event: dict[str, Any]) -> str:
    return " / ".join(str(value) for value in event_identity(event).values())


def _suffix(result: ScenarioResult) -> str:
    if result.detail:
        return f": {result.detail}"
    return f" ({result.events} event{'s' if result.events != 1 else ''})"


def format_report(report: DemoReport, *, viewer_open: bool = False) -> str:
    """The report as a plain-text table: each event sent beside what was stored."""
    header = ("SCENARIO", "TYPE", "NAME / STAGE / STATUS", "IDENTITY", "SENT", "STORED")
    lines: list[tuple[str, ...]] = []
    for row in report.rows:
        if row.ok:
            stored = "yes, once"
        elif row.stored == 0:
            stored = "MISSING"
        elif not row.same:
            stored = "CHANGED"
        else:
            stored = f"yes, accepted {row.acknowledged} times"
        lines.append(
            (
                row.scenario,
                str(row.event.get("type")),
                _label(row.event),
                _identity_text(row.event),
                ",".join(str(status) for status in row.answers),
                stored,
            )
        )
    widths = [max(len(cells[i]) for cells in [header, *lines]) for i in range(len(header))]
    out = io.StringIO()
    out.write("\n")
    for cells in [header, *lines]:
        out.write(
            "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()
        )
        out.write("\n")
    for result in report.scenarios:
        if result.status != "ok":
            out.write(f"{result.status.upper()}: {result.title}: {result.detail}\n")
    for event in report.unexpected:
        out.write(f"UNEXPECTED: the collector stored {describe_event(event)}, never sent\n")
    s = report.summary
    played = Counter(result.status for result in report.scenarios)
    out.write(
        f"\n{s['sent']} events sent, {s['stored_once']} stored exactly once "
        f"({s['missing']} missing, {s['duplicates']} duplicates, {s['changed']} changed, "
        f"{s['refused']} refused, {s['unexpected']} unexpected). Scenarios: {played['ok']} ok, "
        f"{played['skipped']} skipped, {played['failed']} failed.\n"
    )
    if viewer_open:  # else the collector, and its viewer, have stopped
        out.write(f"Viewer: {report.viewer_url}\n")
    out.write("Every event arrived exactly once.\n" if report.ok else "The demo found problems.\n")
    return out.getvalue()
