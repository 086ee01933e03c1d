"""Wire events and a tiny keep-alive HTTP client for the collector tests."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SPEC_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "spec"
OPENAPI_PATH = SPEC_DIR / "outlit-ingest-openapi.json"
KEY = "pk_test_collector"
TS = 1706400000000


def _apply(event: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Overrides replace fields; an override of None leaves the key out, as the SDK does."""
    event.update(overrides)
    return {key: value for key, value in event.items() if value is not None}


def custom(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "custom",
        "timestamp": TS,
        "url": "server://user@example.com",
        "path": "/",
        "eventName": "subscription_upgraded",
        "email": "user@example.com",
        "customerId": "cust_123",
        "customerDomain": "acme.com",
        "properties": {"fromPlan": "starter", "toPlan": "pro", "mrr": 99},
    }
    return _apply(event, overrides)


def identify(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "identify",
        "timestamp": TS,
        "url": "server://user@example.com",
        "path": "/",
        "email": "user@example.com",
        "userId": "usr_1",
        "traits": {"name": "Ada", "plan": "pro"},
        "customerTraits": {"seats": 5},
    }
    return _apply(event, overrides)


def stage(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "stage",
        "timestamp": TS,
        "url": "server://user@example.com",
        "path": "/",
        "stage": "activated",
        "properties": {
            "flow": "onboarding",
            "__fingerprint": None,
            "__email": "user@example.com",
            "__userId": None,
        },
    }
    return _apply(event, overrides)


def billing(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "billing",
        "timestamp": TS,
        "url": "server://acme.com",
        "path": "/",
        "status": "paid",
        "customerId": "cust_123",
        "customerDomain": "acme.com",
        "domain": "acme.com",
        "properties": {"plan": "pro"},
    }
    return _apply(event, overrides)


def body(*events: dict[str, Any], source: str = "server") -> bytes:
    return json.dumps({"source": source, "events": list(events)}).encode()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # lower-cased names
    raw: bytes

    def json(self) -> Any:
        return json.loads(self.raw)


class Client:
    """One keep-alive connection to a collector, as an SDK would hold."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def request(
        self,
        method: str,
        path: str,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        self.connection.request(method, path, data, headers or {})
        response = self.connection.getresponse()
        raw = response.read()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, raw)

    def post(self, data: bytes, key: str = KEY, headers: dict[str, str] | None = None) -> Answer:
        sent = {"Content-Type": "application/json", **(headers or {})}
        return self.request("POST", f"/api/i/v1/{key}/events", data, sent)

    def get(self, path: str) -> Answer:
        return self.request("GET", path)

    def close(self) -> None:
        self.connection.close()
