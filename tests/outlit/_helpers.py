"""Shared pieces of the core's unit tests: clients on an in-memory transport that every test
shuts down, strict JSON parsing, and the published ingest schema as an independent check."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from outlit import MockTransport, Outlit, Request, Response, RetryPolicy

#: Short backoffs keep failure tests fast; the policy's shape is tested on its own.
FAST_RETRY = RetryPolicy(initial_backoff=0.01, max_backoff=0.05)

#: The wire contract's OpenAPI document lives in the repository's sibling ``shared/``.
SPEC_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "spec"
OPENAPI_PATH = SPEC_DIR / "outlit-ingest-openapi.json"

Handler = Callable[[Request], "Response | int"]


class ClientFactory:
    """Makes clients on a :class:`MockTransport` for one test and shuts all of them down after.

    The default flush interval is long, so nothing is sent until the test calls ``flush()`` (or
    a batch fills up): tests decide when the worker sends.
    """

    def __init__(self) -> None:
        self.made: list[Outlit] = []

    def __call__(
        self, handler: Handler | None = None, **options: Any
    ) -> tuple[Outlit, MockTransport]:
        transport = options.pop("transport", None) or MockTransport(handler)
        options.setdefault("public_key", "pk_test_unit")
        options.setdefault("flush_interval", 60.0)
        options.setdefault("retry", FAST_RETRY)
        options.setdefault("shutdown_timeout", 0.5)
        client = Outlit(transport=transport, **options)
        self.made.append(client)
        return client, transport

    def close_all(self) -> None:
        for client in self.made:
            client.shutdown(timeout=0.3)


@contextmanager
def client_factory() -> Iterator[ClientFactory]:
    factory = ClientFactory()
    try:
        yield factory
    finally:
        factory.close_all()


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"non-strict JSON constant {name} on the wire")


def strict_json(data: bytes) -> Any:
    """Parse bytes as strict JSON: valid UTF-8, no NaN/Infinity literals."""
    return json.loads(data.decode("utf-8"), parse_constant=_refuse_constant)


def sent_events(client: Outlit, transport: MockTransport, timeout: float = 5.0) -> list[Any]:
    """Flush and return every event of every request, parsed strictly."""
    result = client.flush(timeout=timeout)
    assert result, f"flush did not settle: {result}"
    return [
        event for request in transport.requests for event in strict_json(request.body)["events"]
    ]


def only_event(client: Outlit, transport: MockTransport) -> dict[str, Any]:
    events = sent_events(client, transport)
    assert len(events) == 1, events
    event: dict[str, Any] = events[0]
    return event


_validator: Any = None


def ingest_request_validator() -> Any:
    """A jsonschema validator for the spec's ``IngestEventsRequest``; skips when absent."""
    global _validator
    if _validator is not None:
        return _validator
    if not OPENAPI_PATH.is_file():
        pytest.skip(f"the ingest OpenAPI document is not at {OPENAPI_PATH} (sibling shared/spec)")
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is in the dev extra")
    referencing = pytest.importorskip("referencing", reason="jsonschema depends on referencing")
    from referencing.jsonschema import DRAFT202012

    document = json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))
    uri = "urn:outlit:ingest-openapi"
    registry = referencing.Registry().with_resource(
        uri, referencing.Resource.from_contents(document, default_specification=DRAFT202012)
    )
    schema = {"$ref": f"{uri}#/components/schemas/IngestEventsRequest"}
    validator = jsonschema.Draft202012Validator(
        schema, registry=registry, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    _validator = validator
    return validator


def assert_valid_body(body: bytes) -> dict[str, Any]:
    """The body is strict JSON and a valid ``IngestEventsRequest``; returns it parsed."""
    parsed: dict[str, Any] = strict_json(body)
    errors = sorted(ingest_request_validator().iter_errors(parsed), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])
    return parsed


class Gate:
    """A handler piece that holds requests until released, and says when one arrived."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.release = threading.Event()

    def hold(self, timeout: float = 5.0) -> None:
        self.arrived.set()
        if not self.release.wait(timeout):
            raise AssertionError("the test never released a held request")

    def answer_ok(self, request: Request) -> Response:
        """A handler: holds each request until released, then answers 200."""
        self.hold()
        return ok(request)


def ok(request: Request) -> Response:
    count = len(request.json()["events"])
    return Response(200, {}, b'{"success":true,"processed":%d}' % count)


class Clock:
    """Records the monotonic time of each request a handler sees."""

    def __init__(self, answer: Callable[[Request, int], Response | int] | None = None) -> None:
        self.times: list[float] = []
        self._answer = answer

    def __call__(self, request: Request) -> Response | int:
        self.times.append(time.monotonic())
        if self._answer is None:
            return ok(request)
        return self._answer(request, len(self.times))

    def gaps(self) -> list[float]:
        return [b - a for a, b in zip(self.times, self.times[1:], strict=False)]
