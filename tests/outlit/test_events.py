"""What each tracking call puts on the wire (ingest-api.md), checked on an in-memory transport,
and what a caller sees when a call is wrong."""

from __future__ import annotations

import datetime as dt
import logging
import time
import types
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from outlit import ClientClosedError, InvalidEventError, Outlit

try:
    from ._helpers import (
        ClientFactory,
        assert_valid_body,
        client_factory,
        ok,
        only_event,
        sent_events,
        strict_json,
    )
except ImportError:
    from _helpers import (
        ClientFactory,
        assert_valid_body,
        client_factory,
        ok,
        only_event,
        sent_events,
        strict_json,
    )


@pytest.fixture
def clients() -> Iterator[ClientFactory]:
    with client_factory() as factory:
        yield factory


@pytest.fixture
def client(clients: ClientFactory) -> Any:
    return clients()


def without_uuid(event: dict[str, Any]) -> dict[str, Any]:
    event = dict(event)
    assert "uuid" in event, event
    del event["uuid"]
    return event


# -- the documented worked example ---------------------------------------------------------


def test_quick_start_example_sends_exactly_the_documented_event(client):
    c, transport = client
    c.track(
        email="user@example.com",
        customer_id="cust_123",
        customer_domain="acme.com",
        event_name="subscription_upgraded",
        properties={"fromPlan": "starter", "toPlan": "pro", "mrr": 99},
        timestamp=1706400000000,
    )
    event = only_event(c, transport)
    assert without_uuid(event) == {
        "type": "custom",
        "timestamp": 1706400000000,
        "url": "server://user@example.com",
        "path": "/",
        "eventName": "subscription_upgraded",
        "email": "user@example.com",
        "customerId": "cust_123",
        "customerDomain": "acme.com",
        "properties": {"fromPlan": "starter", "toPlan": "pro", "mrr": 99},
    }
    (request,) = transport.requests
    body = strict_json(request.body)
    assert body["source"] == "server"
    assert set(body) == {"source", "events"}  # no browser-only keys (visitorId, userIdentity...)
    assert request.url == "https://app.outlit.ai/api/i/v1/pk_test_unit/events"


# -- custom events ---------------------------------------------------------------------------


def test_track_leaves_out_every_field_not_given(client):
    c, transport = client
    c.track(event_name="report_exported", user_id="usr_1", timestamp=1)
    assert without_uuid(only_event(c, transport)) == {
        "type": "custom",
        "timestamp": 1,
        "url": "server://usr_1",
        "path": "/",
        "eventName": "report_exported",
        "userId": "usr_1",
    }


def test_track_sends_every_field_in_camel_case(client):
    c, transport = client
    c.track(
        event_name="e",
        email="a@x.com",
        user_id="u1",
        fingerprint="fp1",
        customer_id="c1",
        customer_domain="acme.com",
        properties={"snake_case_key": 1},
        timestamp=5,
    )
    event = only_event(c, transport)
    assert without_uuid(event) == {
        "type": "custom",
        "timestamp": 5,
        "url": "server://a@x.com",
        "path": "/",
        "eventName": "e",
        "email": "a@x.com",
        "userId": "u1",
        "fingerprint": "fp1",
        "customerId": "c1",
        "customerDomain": "acme.com",
        # property keys are the caller's: never camel-cased
        "properties": {"snake_case_key": 1},
    }


@pytest.mark.parametrize(
    ("identity", "url"),
    [
        (
            dict(
                email="a@x.com",
                user_id="u1",
                fingerprint="fp1",
                customer_id="c1",
                customer_domain="acme.com",
            ),
            "server://a@x.com",
        ),
        (
            dict(user_id="u1", fingerprint="fp1", customer_id="c1", customer_domain="acme.com"),
            "server://u1",
        ),
        (
            dict(fingerprint="fp1", customer_id="c1", customer_domain="acme.com"),
            "server://acme.com",
        ),
        (dict(fingerprint="fp1", customer_id="c1"), "server://c1"),
        (dict(fingerprint="fp1"), "server://fp1"),
        (dict(email="   ", user_id="u1"), "server://u1"),
    ],
    ids=[
        "email-first",
        "then-user-id",
        "then-domain",
        "then-customer-id",
        "then-fingerprint",
        "blank-skipped",
    ],
)
def test_track_url_names_the_first_identity_in_documented_order(client, identity, url):
    c, transport = client
    c.track(event_name="e", **identity)
    event = only_event(c, transport)
    assert event["url"] == url
    assert event["path"] == "/"


def test_blank_identity_strings_are_left_off_the_wire(client):
    c, transport = client
    c.track(event_name="e", email="", user_id="u1", fingerprint=" \t", customer_domain="")
    event = only_event(c, transport)
    assert event["userId"] == "u1"
    assert not {"email", "fingerprint", "customerDomain"} & set(event)


# -- identify ----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["identify", "user.identify"])
def test_identify_sends_traits_and_customer_fields(client, method):
    c, transport = client
    call = c.identify if method == "identify" else c.user.identify
    call(
        email="jane@acme.com",
        user_id="usr_12345",
        fingerprint="device-1",
        customer_id="cust_123",
        customer_domain="acme.com",
        traits={"name": "Jane Doe", "role": "admin"},
        customer_traits={"plan": "enterprise", "seats": 50},
        timestamp=1706400000000,
    )
    assert without_uuid(only_event(c, transport)) == {
        "type": "identify",
        "timestamp": 1706400000000,
        "url": "server://jane@acme.com",
        "path": "/",
        "email": "jane@acme.com",
        "userId": "usr_12345",
        "fingerprint": "device-1",
        "customerId": "cust_123",
        "customerDomain": "acme.com",
        "traits": {"name": "Jane Doe", "role": "admin"},
        "customerTraits": {"plan": "enterprise", "seats": 50},
    }


def test_identify_by_user_id_alone_uses_it_for_the_url(client):
    c, transport = client
    c.identify(user_id="usr_1", timestamp=3)
    assert without_uuid(only_event(c, transport)) == {
        "type": "identify",
        "timestamp": 3,
        "url": "server://usr_1",
        "path": "/",
        "userId": "usr_1",
    }


# -- stages ------------------------------------------------------------------------------

STAGE_CALLS = [("activate", "activated"), ("engaged", "engaged"), ("inactive", "inactive")]


@pytest.mark.parametrize(("method", "stage"), STAGE_CALLS)
def test_stage_carries_identity_inside_properties_with_explicit_nulls(client, method, stage):
    c, transport = client
    getattr(c.user, method)(
        email="user@example.com", properties={"flow": "onboarding"}, timestamp=9
    )
    event = only_event(c, transport)
    assert without_uuid(event) == {
        "type": "stage",
        "timestamp": 9,
        "url": "server://user@example.com",
        "path": "/",
        "stage": stage,
        "properties": {
            "flow": "onboarding",
            "__fingerprint": None,
            "__email": "user@example.com",
            "__userId": None,
        },
    }
    # The markers must be real JSON nulls on the wire, not absent.
    raw = transport.requests[0].body
    assert b'"__fingerprint":null' in raw
    assert b'"__userId":null' in raw


@pytest.mark.parametrize(
    ("identity", "url"),
    [
        (dict(email="e@x.com", user_id="u1", fingerprint="fp"), "server://e@x.com"),
        (dict(user_id="u1", fingerprint="fp"), "server://u1"),
        (dict(fingerprint="fp"), "server://fp"),
    ],
)
def test_stage_url_prefers_email_then_user_id_then_fingerprint(client, identity, url):
    c, transport = client
    c.user.engaged(**identity)
    event = only_event(c, transport)
    assert event["url"] == url
    assert event["properties"] == {
        "__fingerprint": identity.get("fingerprint"),
        "__email": identity.get("email"),
        "__userId": identity.get("user_id"),
    }


def test_stage_call_does_not_add_markers_to_the_callers_dict(client):
    c, transport = client
    props = {"milestone": "first_project_created"}
    c.user.engaged(user_id="usr_123", properties=props)
    assert props == {"milestone": "first_project_created"}
    assert only_event(c, transport)["properties"]["milestone"] == "first_project_created"


# -- billing -----------------------------------------------------------------------------

BILLING_STATUSES = ["trialing", "paid", "churned"]


@pytest.mark.parametrize("status", BILLING_STATUSES)
def test_billing_sends_domain_mirroring_customer_domain(client, status):
    c, transport = client
    getattr(c.customer, status)(
        customer_domain="acme.com", customer_id="cust_123", properties={"plan": "pro"}, timestamp=4
    )
    assert without_uuid(only_event(c, transport)) == {
        "type": "billing",
        "timestamp": 4,
        "url": "server://acme.com",
        "path": "/",
        "status": status,
        "customerId": "cust_123",
        "customerDomain": "acme.com",
        "domain": "acme.com",
        "properties": {"plan": "pro"},
    }


@pytest.mark.parametrize(
    ("identity", "url", "absent"),
    [
        (dict(customer_id="cust_1"), "server://cust_1", {"customerDomain", "domain"}),
        (
            dict(customer_id="cust_1", stripe_customer_id="cus_S"),
            "server://cust_1",
            {"customerDomain", "domain"},
        ),
        (dict(stripe_customer_id="cus_S"), "server://cus_S", {"customerId", "domain"}),
    ],
)
def test_billing_url_prefers_domain_then_customer_id_then_stripe_id(client, identity, url, absent):
    c, transport = client
    c.customer.paid(**identity)
    event = only_event(c, transport)
    assert event["url"] == url
    assert not absent & set(event)
    if "stripe_customer_id" in identity:
        assert event["stripeCustomerId"] == identity["stripe_customer_id"]


# -- timestamps and ids --------------------------------------------------------------------


def test_default_timestamp_is_the_time_of_the_call_in_integer_milliseconds(clients):
    sent_at: list[float] = []

    def handler(request):
        sent_at.append(time.time())
        return ok(request)

    c, transport = clients(handler)
    before = time.time()
    c.track(event_name="e", email="a@x.com")
    after = time.time()
    time.sleep(0.15)  # the send happens well after the call
    event = only_event(c, transport)
    assert type(event["timestamp"]) is int
    assert int(before * 1000) <= event["timestamp"] <= int(after * 1000) + 1
    assert event["timestamp"] <= int(sent_at[0] * 1000) - 100


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (1706400000000, 1706400000000),
        (1706400000000.9, 1706400000000),
        (dt.datetime(2024, 1, 28, 0, 0, tzinfo=dt.timezone.utc), 1706400000000),
        (
            dt.datetime(2024, 1, 28, 2, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            1706400000000,
        ),
        (dt.datetime(2024, 1, 28, 0, 0, 0, 250000, tzinfo=dt.timezone.utc), 1706400000250),
    ],
    ids=["int-ms", "float-ms", "aware-utc", "aware-plus-2h", "aware-with-micros"],
)
def test_explicit_timestamp_becomes_integer_milliseconds(client, given, expected):
    c, transport = client
    c.track(event_name="e", email="a@x.com", timestamp=given)
    c.identify(email="a@x.com", timestamp=given)
    c.user.activate(email="a@x.com", timestamp=given)
    c.customer.paid(customer_id="c1", timestamp=given)
    events = sent_events(c, transport)
    assert [e["timestamp"] for e in events] == [expected] * 4
    assert all(type(e["timestamp"]) is int for e in events)


@pytest.mark.parametrize(
    "bad",
    [
        dt.datetime(2024, 1, 28),
        "2024-01-28T00:00:00Z",
        True,
        float("nan"),
        float("inf"),
        -1,
        -1706400000000.0,
        dt.datetime(1969, 12, 31, tzinfo=dt.timezone.utc),
    ],
    ids=["naive-datetime", "string", "bool", "nan", "inf", "negative", "negative-float", "1969"],
)
def test_unusable_timestamp_is_rejected_at_the_call(client, bad):
    c, _ = client
    with pytest.raises(ValueError, match="timestamp"):
        c.track(event_name="e", email="a@x.com", timestamp=bad)
    with pytest.raises(ValueError, match="timestamp"):
        c.customer.churned(customer_id="c1", timestamp=bad)
    assert c.queue_size == 0


def test_a_timestamp_that_looks_like_seconds_is_sent_as_given_with_one_warning(client, caplog):
    c, transport = client
    caplog.set_level(logging.WARNING, logger="outlit")
    c.track(event_name="e", email="a@x.com", timestamp=1706400000)  # seconds by mistake
    c.track(event_name="e", email="a@x.com", timestamp=1706400001.5)
    events = sent_events(c, transport)
    assert [e["timestamp"] for e in events] == [1706400000, 1706400001]  # the caller's value
    said = [r.getMessage() for r in caplog.records if "seconds" in r.getMessage()]
    assert len(said) <= 1  # once per process (another test may have said it already)
    import outlit._events as events_module

    assert events_module._warned_seconds


def test_naive_datetime_error_says_to_use_an_aware_one(client):
    c, _ = client
    with pytest.raises(InvalidEventError, match="aware"):
        c.identify(email="a@x.com", timestamp=dt.datetime(2024, 1, 28))


def test_every_event_carries_a_unique_version_4_uuid(client):
    c, transport = client
    for i in range(60):
        c.track(event_name=f"e{i}", email="a@x.com")
        c.identify(user_id=f"u{i}")
        c.user.inactive(fingerprint=f"fp{i}")
        c.customer.trialing(customer_domain=f"d{i}.com")
    events = sent_events(c, transport)
    assert len(events) == 240
    ids = [e["uuid"] for e in events]
    assert len(set(ids)) == len(ids)
    for value in ids:
        parsed = uuid.UUID(value)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == value  # canonical lower-case 8-4-4-4-12 form


# -- missing identity ------------------------------------------------------------------------

CALLS: dict[
    str, tuple[Callable[[Outlit], Callable[..., None]], dict[str, Any], tuple[str, ...]]
] = {
    "track": (
        lambda c: c.track,
        {"event_name": "e"},
        ("email", "user_id", "fingerprint", "customer_id", "customer_domain"),
    ),
    "identify": (lambda c: c.identify, {}, ("email", "user_id")),
    "user.identify": (lambda c: c.user.identify, {}, ("email", "user_id")),
    "user.activate": (lambda c: c.user.activate, {}, ("fingerprint", "email", "user_id")),
    "user.engaged": (lambda c: c.user.engaged, {}, ("fingerprint", "email", "user_id")),
    "user.inactive": (lambda c: c.user.inactive, {}, ("fingerprint", "email", "user_id")),
    "customer.trialing": (lambda c: c.customer.trialing, {}, ("customer_id", "customer_domain")),
    "customer.paid": (lambda c: c.customer.paid, {}, ("customer_id", "customer_domain")),
    "customer.churned": (lambda c: c.customer.churned, {}, ("customer_id", "customer_domain")),
}


@pytest.mark.parametrize("name", list(CALLS))
@pytest.mark.parametrize("blank", [None, "", "   "], ids=["absent", "empty", "whitespace"])
def test_call_without_identity_raises_value_error_naming_accepted_fields(client, name, blank):
    c, transport = client
    method, required, accepted = CALLS[name]
    kwargs = dict(required)
    if blank is not None:
        kwargs.update({field: blank for field in accepted})
    with pytest.raises(InvalidEventError) as raised:
        method(c)(**kwargs)
    assert isinstance(raised.value, ValueError)
    message = str(raised.value)
    for field in accepted:
        assert field in message, (field, message)
    assert c.queue_size == 0
    assert c.flush(timeout=1)
    assert transport.requests == []


def test_identify_with_only_customer_fields_is_rejected(client):
    c, _ = client
    with pytest.raises(ValueError, match="email"):
        c.identify(customer_id="cust_1", customer_domain="acme.com", fingerprint="fp")


@pytest.mark.parametrize("event_name", [None, "", "  ", 5])
def test_track_without_a_usable_event_name_is_rejected(client, event_name):
    c, _ = client
    with pytest.raises(ValueError, match="event_name"):
        c.track(event_name=event_name, email="a@x.com")


# -- wrong types -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kwargs", "field"),
    [
        ("track", {"event_name": "e", "email": "a@x.com", "properties": ["a"]}, "properties"),
        ("track", {"event_name": "e", "email": "a@x.com", "properties": "a=1"}, "properties"),
        ("track", {"event_name": "e", "email": 123}, "email"),
        ("track", {"event_name": "e", "email": "a@x.com", "customer_domain": 5}, "customer_domain"),
        ("track", {"event_name": "e", "fingerprint": b"fp"}, "fingerprint"),
        ("track", {"event_name": "e", "user_id": True}, "user_id"),
        ("identify", {"email": "a@x.com", "traits": [("a", 1)]}, "traits"),
        ("identify", {"email": "a@x.com", "customer_traits": "plan=pro"}, "customer_traits"),
        ("identify", {"email": ["a@x.com"]}, "email"),
        ("user.activate", {"email": "a@x.com", "properties": 1}, "properties"),
        ("user.engaged", {"user_id": 1.5}, "user_id"),
        ("customer.paid", {"customer_id": "c1", "properties": ("a",)}, "properties"),
        ("customer.paid", {"customer_domain": object()}, "customer_domain"),
    ],
)
def test_wrong_argument_type_raises_value_error_naming_the_field(client, name, kwargs, field):
    c, _ = client
    method = CALLS[name][0](c)
    with pytest.raises(ValueError, match=field):
        method(**kwargs)
    assert c.queue_size == 0


def test_integer_ids_are_sent_as_strings(client):
    c, transport = client
    c.track(event_name="e", user_id=42)
    c.identify(user_id=7)
    c.user.activate(user_id=8)
    c.customer.paid(customer_id=99)
    track, identify, stage, billing = sent_events(c, transport)
    assert (track["userId"], track["url"]) == ("42", "server://42")
    assert (identify["userId"], identify["url"]) == ("7", "server://7")
    assert stage["properties"]["__userId"] == "8"
    assert (billing["customerId"], billing["url"]) == ("99", "server://99")


def test_string_subclasses_are_sent_as_plain_strings(client):
    class SafeString(str):
        pass

    c, transport = client
    c.track(event_name=SafeString("e"), email=SafeString("a@x.com"))
    event = only_event(c, transport)
    assert (event["eventName"], event["email"]) == ("e", "a@x.com")


def test_any_mapping_is_accepted_as_properties(client):
    c, transport = client
    c.track(
        event_name="e",
        email="a@x.com",
        properties=types.MappingProxyType({"plan": "pro"}),
    )
    assert only_event(c, transport)["properties"] == {"plan": "pro"}


# -- the caller's data after the call --------------------------------------------------------


def test_changing_properties_after_the_call_does_not_change_what_is_sent(client):
    c, transport = client
    props = {"plan": "pro", "seats": 5}
    traits = {"role": "admin"}
    stage_props = {"flow": "a"}
    billing_props = {"amount": 99}
    c.track(event_name="e", email="a@x.com", properties=props)
    c.identify(email="a@x.com", traits=traits, customer_traits=traits)
    c.user.activate(email="a@x.com", properties=stage_props)
    c.customer.paid(customer_id="c1", properties=billing_props)
    for mutated in (props, traits, stage_props, billing_props):
        mutated["added_later"] = True
        mutated.pop(next(iter(mutated)))
    track, identify, stage, billing = sent_events(c, transport)
    assert track["properties"] == {"plan": "pro", "seats": 5}
    assert identify["traits"] == {"role": "admin"}
    assert identify["customerTraits"] == {"role": "admin"}
    assert stage["properties"]["flow"] == "a"
    assert "added_later" not in stage["properties"]
    assert billing["properties"] == {"amount": 99}


# -- lifecycle ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CALLS))
def test_call_after_shutdown_raises_runtime_error(client, name):
    c, transport = client
    c.track(event_name="before", email="a@x.com")
    c.shutdown()
    method, required, accepted = CALLS[name]
    kwargs = {**required, accepted[0]: "id-1"}
    with pytest.raises(ClientClosedError) as raised:
        method(c)(**kwargs)
    assert isinstance(raised.value, RuntimeError)
    assert c.closed
    # what was queued before shutdown was delivered by it
    assert [e["eventName"] for e in transport.events] == ["before"]


def test_shutdown_is_idempotent(client):
    c, transport = client
    c.track(event_name="e", email="a@x.com")
    assert c.shutdown()
    assert c.shutdown()
    assert len(transport.events) == 1


def test_call_after_shutdown_of_a_never_used_client_raises(client):
    c, _ = client
    c.shutdown()
    with pytest.raises(RuntimeError):
        c.track(event_name="e", email="a@x.com")


def test_disabled_client_still_validates_calls_but_sends_nothing(clients):
    c, transport = clients(enabled=False, public_key=None)
    with pytest.raises(ValueError):
        c.track(event_name="e")
    c.track(event_name="e", email="a@x.com")
    c.customer.paid(customer_id="c1")
    assert c.queue_size == 0
    assert c.flush(timeout=1)
    assert transport.requests == []


# -- the published schema ------------------------------------------------------------------

EVERY_CALL_FULLY: list[tuple[str, dict[str, Any]]] = [
    (
        "track",
        dict(
            event_name="report_exported",
            email="jane@acme.com",
            user_id="usr_1",
            fingerprint="fp_1",
            customer_id="cust_1",
            customer_domain="acme.com",
            properties={"format": "pdf", "rows": 1500, "ok": True, "none": None},
        ),
    ),
    ("track", dict(event_name="minimal", fingerprint="fp_1")),
    (
        "identify",
        dict(
            email="jane@acme.com",
            user_id="usr_1",
            fingerprint="fp_1",
            customer_id="cust_1",
            customer_domain="acme.com",
            traits={"name": "Jane", "nested": {"a": [1, 2]}},
            customer_traits={"seats": 50},
        ),
    ),
    ("user.identify", dict(user_id="usr_1")),
    ("user.activate", dict(email="jane@acme.com", properties={"flow": "onboarding"})),
    ("user.engaged", dict(user_id="usr_1")),
    ("user.inactive", dict(fingerprint="fp_1", properties={"reason": "no_login_30_days"})),
    (
        "customer.trialing",
        dict(customer_domain="acme.com", customer_id="cust_1", properties={"trialEndsAt": "x"}),
    ),
    ("customer.paid", dict(customer_id="cust_1", stripe_customer_id="cus_1")),
    ("customer.churned", dict(customer_domain="acme.com")),
]


@pytest.mark.parametrize(("name", "kwargs"), EVERY_CALL_FULLY, ids=[n for n, _ in EVERY_CALL_FULLY])
def test_every_call_produces_a_body_valid_against_the_published_schema(client, name, kwargs):
    c, transport = client
    CALLS[name][0](c)(**kwargs)
    assert c.flush(timeout=5)
    (request,) = transport.requests
    body = assert_valid_body(request.body)
    assert len(body["events"]) == 1


def test_full_batches_of_mixed_events_validate_against_the_published_schema(client):
    c, transport = client
    for i in range(63):
        name, kwargs = EVERY_CALL_FULLY[i % len(EVERY_CALL_FULLY)]
        CALLS[name][0](c)(**kwargs)
    for i in range(250 - 63):
        c.track(event_name="bulk", user_id=str(i))
    assert c.flush(timeout=5)
    assert [len(r.json()["events"]) for r in transport.requests] == [100, 100, 50]
    for request in transport.requests:
        assert_valid_body(request.body)


# -- values of the app's own types ------------------------------------------------------------


def test_uuid_keys_are_accepted_as_ids_and_sent_as_strings(client):
    c, transport = client
    user, device, customer = uuid.UUID(int=1), uuid.UUID(int=2), uuid.UUID(int=3)
    c.track(event_name="e", user_id=user, fingerprint=device)
    c.customer.paid(customer_id=customer)
    track, paid = sent_events(c, transport)
    assert (track["userId"], track["fingerprint"]) == (str(user), str(device))
    assert paid["customerId"] == str(customer)
    with pytest.raises(InvalidEventError, match="email must be a string, got UUID"):
        c.track(event_name="e", email=user)


class _UnreadableMapping(Mapping[str, Any]):
    def __getitem__(self, key: str) -> Any:
        raise RuntimeError("read failed")

    def __iter__(self) -> Iterator[str]:
        return iter(["plan"])

    def __len__(self) -> int:
        return 1


class _BrokenZone(dt.tzinfo):
    def utcoffset(self, when: dt.datetime | None) -> dt.timedelta:
        raise RuntimeError("zone data missing")


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (
            lambda c: c.track(event_name="e", user_id="u", properties=_UnreadableMapping()),
            "properties",
        ),
        (lambda c: c.identify(user_id="u", traits=_UnreadableMapping()), "traits"),
        (lambda c: c.customer.paid(customer_id="c", properties=_UnreadableMapping()), "properties"),
        (
            lambda c: c.track(
                event_name="e", user_id="u", timestamp=dt.datetime(2024, 1, 1, tzinfo=_BrokenZone())
            ),
            "timestamp",
        ),
    ],
    ids=["track_properties", "identify_traits", "billing_properties", "timestamp_zone"],
)
def test_a_value_that_raises_when_read_is_a_validation_error_naming_the_field(client, call, field):
    c, _ = client
    with pytest.raises(InvalidEventError, match=f"^{field} could not be read: RuntimeError"):
        call(c)
    assert c.queue_size == 0
