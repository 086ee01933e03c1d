"""The wire contract as the collector enforces it: every rule, accepted and refused."""

from __future__ import annotations

import json
from typing import Any

import pytest
from collector_helpers import TS, billing, body, custom, identify, stage

from outlit._collector.contract import (
    INVALID_KEY_MESSAGE,
    MAX_BODY_BYTES,
    check_key,
    invalid_key_body,
    validate_event,
    validate_request,
)

GOOD_EVENTS = {
    "custom": custom(),
    "custom with only a fingerprint": custom(
        email=None, customerId=None, customerDomain=None, fingerprint="fp_1"
    ),
    "custom with only a customer domain": custom(
        email=None, customerId=None, customerDomain="acme.com"
    ),
    "custom with a uuid": custom(uuid="0b0e1a8e-3a55-4a4a-9a35-2b1f5d3c7e11"),
    "custom with utm": custom(utm={"source": "newsletter", "campaign": "spring"}),
    "identify by email": identify(userId=None),
    "identify by user id": identify(email=None),
    "stage activated": stage(),
    "stage engaged by user id": stage(
        stage="engaged", properties={"__fingerprint": None, "__email": None, "__userId": "u1"}
    ),
    "stage inactive by fingerprint": stage(
        stage="inactive", properties={"__fingerprint": "fp", "__email": None, "__userId": None}
    ),
    "billing trialing by id": billing(status="trialing", customerDomain=None, domain=None),
    "billing churned by legacy domain": billing(
        status="churned", customerId=None, customerDomain=None
    ),
    "billing by stripe id": billing(
        customerId=None, customerDomain=None, domain=None, stripeCustomerId="cus_9"
    ),
    "pageview from a browser": {
        "type": "pageview",
        "timestamp": TS,
        "url": "https://example.com/pricing",
        "path": "/pricing",
        "title": "Pricing",
    },
}


def _without_nulls(event: dict[str, Any]) -> dict[str, Any]:
    # The factories take None to mean "leave the key out", as the SDK does.
    return {key: value for key, value in event.items() if value is not None}


@pytest.mark.parametrize(
    "event", [_without_nulls(e) for e in GOOD_EVENTS.values()], ids=list(GOOD_EVENTS)
)
def test_good_event_has_no_problems(event: dict[str, Any]) -> None:
    assert validate_event(event) == []


BAD_EVENTS: list[tuple[str, dict[str, Any] | Any, str]] = [
    ("not an object", ["custom"], "must be a JSON object, got array"),
    ("no type", {k: v for k, v in custom().items() if k != "type"}, "type: required"),
    ("unknown type", custom(type="click"), "type: must be one of"),
    ("no timestamp", {k: v for k, v in custom().items() if k != "timestamp"}, "timestamp: required"),
    ("timestamp in float", custom(timestamp=1706400000000.5), "timestamp: must be a non-negative integer"),
    ("timestamp as string", custom(timestamp="1706400000000"), "timestamp: must be a non-negative integer"),
    ("timestamp as boolean", custom(timestamp=True), "timestamp: must be a non-negative integer"),
    ("negative timestamp", custom(timestamp=-1), "timestamp: must be a non-negative integer"),
    ("no url", {k: v for k, v in custom().items() if k != "url"}, "url: required"),
    ("url not a string", custom(url=5), "url: must be a string, got number"),
    ("no path", {k: v for k, v in custom().items() if k != "path"}, "path: required"),
    ("uuid not a string", custom(uuid=12), "uuid: must be a string"),
    ("blank uuid", custom(uuid="  "), "uuid: must not be blank"),
    ("null value", {**custom(), "userId": None}, "userId: null is not allowed"),
    ("custom without name", {k: v for k, v in custom().items() if k != "eventName"}, "eventName: required for type 'custom'"),
    ("custom with blank name", custom(eventName="   "), "eventName: required for type 'custom'"),
    (
        "custom without identity",
        {k: v for k, v in custom().items() if k not in ("email", "customerId", "customerDomain")},
        "type 'custom' needs a non-blank one of email, userId, fingerprint, customerId, customerDomain",
    ),
    ("custom with blank identity only", _without_nulls(custom(email=" ", customerId=None, customerDomain=None)), "type 'custom' needs"),
    ("properties not an object", custom(properties=[1, 2]), "properties: must be a JSON object, got array"),
    ("email not a string", custom(email=["a@b.c"]), "email: must be a string, got array"),
    ("identify without email or user id", _without_nulls(identify(email=None, userId=None, fingerprint="fp")), "type 'identify' needs a non-blank one of email, userId"),
    ("traits not an object", identify(traits="vip"), "traits: must be a JSON object, got string"),
    ("customer traits not an object", identify(customerTraits=3), "customerTraits: must be a JSON object"),
    ("utm not an object", custom(utm="spring"), "utm: must be a JSON object, got string"),
    ("utm with an unknown key", custom(utm={"campain": "x"}), "utm.campain: unexpected key"),
    ("utm value not a string", custom(utm={"source": 3}), "utm.source: must be a string, got number"),
    ("unknown stage", stage(stage="activate"), "stage: must be one of activated, engaged, inactive"),
    ("stage without properties", {k: v for k, v in stage().items() if k != "properties"}, "properties: required for type 'stage'"),
    ("stage missing a marker", stage(properties={"__email": "a@b.c", "__userId": None}), "properties.__fingerprint: required for type 'stage' (null when unknown)"),
    ("stage with all markers null", stage(properties={"__fingerprint": None, "__email": None, "__userId": None}), "properties: needs a non-blank __fingerprint, __email or __userId"),
    ("stage marker not a string", stage(properties={"__fingerprint": 1, "__email": "a@b.c", "__userId": None}), "properties.__fingerprint: must be a string or null"),
    ("unknown billing status", billing(status="active"), "status: must be one of trialing, paid, churned"),
    ("billing without customer", _without_nulls(billing(customerId=None, customerDomain=None, domain=None)), "type 'billing' needs a non-blank one of customerId, customerDomain, domain, stripeCustomerId"),
    ("engagement without times", {"type": "engagement", "timestamp": TS, "url": "u", "path": "/"}, "activeTimeMs: required for type 'engagement'"),
    ("calendar with unknown provider", {"type": "calendar", "timestamp": TS, "url": "u", "path": "/", "provider": "zoom"}, "provider: must be one of"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("event", "expected"), [(e, m) for _, e, m in BAD_EVENTS], ids=[n for n, _, _ in BAD_EVENTS]
)
def test_bad_event_names_the_field(event: Any, expected: str) -> None:
    problems = validate_event(event)
    assert any(expected in problem for problem in problems), problems


def test_all_four_sdk_events_in_one_request_are_accepted() -> None:
    result = validate_request(body(custom(), identify(), stage(), billing()))
    assert result.status == 200
    assert result.body == {"success": True, "processed": 4}
    assert [index for index, _ in result.accepted] == [0, 1, 2, 3]
    assert result.errors == []


def test_partly_bad_request_is_207_with_the_refused_indexes() -> None:
    result = validate_request(body(custom(), custom(eventName=""), identify(), stage(stage="x")))
    assert result.status == 207
    assert result.body["success"] is False
    assert result.body["processed"] == 2
    assert [error["index"] for error in result.body["errors"]] == [1, 3]
    assert result.body["errors"][0]["message"].startswith("events[1].eventName: required")
    assert [index for index, _ in result.accepted] == [0, 2]


def test_request_whose_events_are_all_bad_is_207_with_nothing_processed() -> None:
    result = validate_request(body(custom(eventName="")))
    assert result.status == 207
    assert result.body["processed"] == 0
    assert result.accepted == []


def test_one_event_with_several_problems_is_one_error_entry() -> None:
    result = validate_request(body(custom(eventName="", timestamp="now")))
    assert len(result.body["errors"]) == 1
    message = result.body["errors"][0]["message"]
    assert "events[0].eventName" in message and "events[0].timestamp" in message


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"{not json", "Malformed JSON"),
        (b"", "Malformed JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b'{"source": "server", "events": [1]} trailing', "Malformed JSON"),
        (b'[{"type": "custom"}]', "must be a JSON object, got array"),
        (b'{"source": "server"}', "events: required"),
        (b'{"events": [{}]}', "source: required"),
        (b'{"source": "browser", "events": [{}]}', "source: must be one of"),
        (b'{"source": "server", "events": {}}', "events: must be an array"),
        (b'{"source": "server", "events": []}', "events: must hold at least one event"),
        (b'{"source": "server", "events": [{}], "sessionId": "s"}', "sessionId: unexpected key"),
        (
            b'{"source": "server", "events": [{}], "userIdentity": 1}',
            "userIdentity: must be an object",
        ),
        (
            b'{"source": "server", "events": [{}], "userIdentity": {"x": 1}}',
            "userIdentity.x: unexpected key",
        ),
        (
            b'{"source": "server", "events": [{}], "userIdentity": {"email": 5}}',
            "userIdentity.email: must be a string, got number",
        ),
        (
            b'{"source": "server", "events": [{}], "customerIdentity": {"customerTraits": "x"}}',
            "customerIdentity.customerTraits: must be a JSON object, got string",
        ),
        (
            b'{"source": "server", "events": [{"type": "custom", "n": NaN}]}',
            "NaN is not valid JSON",
        ),
        (b'{"source": "server", "events": [{"n": Infinity}]}', "Infinity is not valid JSON"),
    ],
)
def test_bad_request_body_is_400_with_the_error_envelope(data: bytes, fragment: str) -> None:
    result = validate_request(data)
    assert result.status == 400
    assert result.body["success"] is False
    assert fragment in result.body["message"] or any(
        fragment in error["message"] for error in result.body["errors"]
    ), result.body
    assert result.accepted == []


def test_browser_identity_keys_are_allowed_at_the_top_level() -> None:
    data = json.dumps(
        {
            "source": "client",
            "visitorId": "a1b2c3d4-e5f6-7890-abcd-ef1234567890",
            "userIdentity": {"email": "user@example.com"},
            "customerIdentity": {"customerId": "cust_1"},
            "events": [custom()],
        }
    ).encode()
    assert validate_request(data).status == 200


def test_more_than_100_events_is_413() -> None:
    result = validate_request(body(*[custom()] * 101))
    assert result.status == 413
    assert "At most 100 events" in result.body["message"]
    assert validate_request(body(*[custom()] * 100)).status == 200


def test_body_over_one_million_bytes_is_413() -> None:
    padding = "x" * (MAX_BODY_BYTES - len(body(custom(properties={"p": ""}))))
    at_limit = body(custom(properties={"p": padding}))
    assert len(at_limit) == MAX_BODY_BYTES
    assert validate_request(at_limit).status == 200
    over = body(custom(properties={"p": padding + "x"}))
    assert validate_request(over).status == 413


def test_accepted_events_keep_their_exact_original_text() -> None:
    data = (
        b'{ "source" : "server" ,\n "events" : [ {"type":"custom", "timestamp": 1706400000000,'
        b' "url":"server://\\u00e9@x.io","path":"/","eventName":"caf\xc3\xa9","email":"\\u00e9@x.io",'
        b' "properties": {"n": 1.50, "big": 1e3}} ,\n\t{"type":"identify","timestamp":1,"url":"u",'
        b'"path":"/","userId":"u1"} ] }'
    )
    result = validate_request(data)
    assert result.status == 200
    text = data.decode()
    assert result.raw[0] == text[text.index('{"type":"custom"') : text.index("} ,\n\t") + 1]
    assert result.raw[1] == '{"type":"identify","timestamp":1,"url":"u","path":"/","userId":"u1"}'
    assert json.loads(result.raw[0]) == result.accepted[0][1]


@pytest.mark.parametrize(
    ("key", "valid"),
    [
        ("pk_test", True),
        ("pk_live_AbC-123", True),
        ("pk_", False),
        ("sk_test", False),
        ("", False),
        ("pk_a b", False),
    ],
)
def test_check_key_wants_a_public_key(key: str, valid: bool) -> None:
    assert check_key(key) is valid


def test_invalid_key_body_matches_the_service() -> None:
    assert invalid_key_body() == {
        "success": False,
        "message": INVALID_KEY_MESSAGE,
        "errors": [{"index": -1, "message": "Invalid or inactive tracking configuration"}],
    }


def _request_validator(openapi: dict[str, Any]) -> Any:
    jsonschema = pytest.importorskip("jsonschema")
    referencing = pytest.importorskip("referencing")
    resource = referencing.Resource.from_contents(
        openapi, default_specification=referencing.jsonschema.DRAFT202012
    )
    registry = referencing.Registry().with_resource("urn:outlit-ingest", resource)
    schema = {"$ref": "urn:outlit-ingest#/components/schemas/IngestEventsRequest"}
    return jsonschema.Draft202012Validator(schema, registry=registry)


GOOD_BODIES = {
    "every sdk event": body(custom(), identify(), stage(), billing()),
    "100 events": body(*[custom(uuid=f"u{i}") for i in range(100)]),
    **{name: body(_without_nulls(event)) for name, event in GOOD_EVENTS.items()},
}


@pytest.mark.parametrize("data", list(GOOD_BODIES.values()), ids=list(GOOD_BODIES))
def test_bodies_the_collector_accepts_match_the_openapi_schema(
    openapi: dict[str, Any], data: bytes
) -> None:
    assert validate_request(data).status == 200
    errors = list(_request_validator(openapi).iter_errors(json.loads(data)))
    assert errors == [], [error.message for error in errors]


def test_openapi_schema_refuses_what_the_collector_refuses_at_request_level(
    openapi: dict[str, Any],
) -> None:
    validator = _request_validator(openapi)
    for data in (
        body(*[custom()] * 101),
        b'{"source": "server", "events": []}',
        b'{"source": "server", "events": [{}], "sessionId": "s"}',
        b'{"source": "server", "events": [{}], "userIdentity": {"email": 5}}',
        b'{"source": "server", "events": [{}], "customerIdentity": {"customerTraits": "x"}}',
    ):
        assert validate_request(data).status in (400, 413)
        assert not validator.is_valid(json.loads(data))
    for event in (custom(utm="spring"), custom(utm={"campain": "x"}), custom(utm={"source": 3})):
        data = body(event)
        assert validate_request(data).status == 207  # the event refused, by name
        assert not validator.is_valid(json.loads(data))
