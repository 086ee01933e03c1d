"""``outlit.testing``: recording clients, the wire form of what is recorded, contract checks and
the assertion helpers."""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
import select
import socket
from collections.abc import Iterator
from unittest.mock import ANY

import pytest

from outlit import MockTransport, Outlit
from outlit._collector.server import Collector
from outlit.testing import (
    ContractError,
    RecordingTransport,
    assert_billing,
    assert_identified,
    assert_not_tracked,
    assert_stage,
    assert_tracked,
    find_events,
    record,
)

KEY = "pk_test_recording"


@pytest.fixture
def client() -> Iterator[Outlit]:
    made = Outlit(public_key=KEY, api_host="http://127.0.0.1:9", flush_interval=60)
    yield made
    made.shutdown(timeout=1)


@pytest.fixture
def collector() -> Iterator[Collector]:
    with Collector(host="127.0.0.1", port=0, memory=True) as running:
        yield running


def test_an_event_is_visible_right_after_track(client: Outlit) -> None:
    with record(client) as events:
        client.track(event_name="signup", email="jane@acme.com")
        assert len(events) == 1
        assert events[0]["eventName"] == "signup"


def test_recorded_events_are_the_wire_form(client: Outlit) -> None:
    with record(client) as events:
        client.track(
            event_name="report_exported",
            user_id=42,  # an int primary key becomes the wire's string
            customer_domain="acme.com",
            properties={
                "when": dt.date(2024, 2, 15),
                "amount": decimal.Decimal("99"),
                "ratio": math.nan,
            },
            timestamp=1706400000000,
        )
        (event,) = events
    assert event == {
        "type": "custom",
        "timestamp": 1706400000000,
        "url": "server://42",
        "path": "/",
        "eventName": "report_exported",
        "userId": "42",
        "customerDomain": "acme.com",
        "properties": {"when": "2024-02-15", "amount": 99, "ratio": None},
        "uuid": ANY,
    }
    assert len(event["uuid"]) == 36


def test_default_timestamp_is_integer_milliseconds(client: Outlit) -> None:
    with record(client) as events:
        client.user.activate(email="jane@acme.com")
        (event,) = events
    assert isinstance(event["timestamp"], int)
    assert event["timestamp"] > 1_600_000_000_000


def test_recording_transport_works_as_a_constructor_argument() -> None:
    transport = RecordingTransport()
    with Outlit(public_key=KEY, transport=transport) as client:
        client.identify(email="jane@acme.com", traits={"role": "admin"})
        assert_identified(transport.events, email="jane@acme.com", traits={"role": "admin"})
    # Shutting the client down does not lose what was recorded.
    assert len(transport.events) == 1
    assert len(transport.requests) == 1


def queue_refused(client: Outlit, name: str, timestamp: int) -> None:
    """Queue an event the service would refuse, as a hand-built event or an SDK bug would:
    ``track()`` itself refuses a negative timestamp at the call."""
    client._enqueue(
        {
            "type": "custom",
            "timestamp": timestamp,
            "url": "server://jane@acme.com",
            "path": "/",
            "eventName": name,
            "email": "jane@acme.com",
        }
    )


def test_a_call_the_service_would_refuse_fails_naming_the_field(client: Outlit) -> None:
    with record(client) as events:
        queue_refused(client, "signup", timestamp=-5)
        with pytest.raises(ContractError, match=r"timestamp: must be a non-negative integer"):
            len(events)
        # Raised once: the next read does not fail again for the same event.
        assert list(events) == []
    # The recorder answered as the service does (207), so the client counts a rejection.
    assert client.stats.dropped_by_reason == {"rejected": 1}


def test_an_unread_refusal_fails_when_the_block_ends(client: Outlit) -> None:
    with pytest.raises(ContractError, match="timestamp"), record(client):
        queue_refused(client, "signup", timestamp=-5)


def test_an_oversized_event_fails_as_the_client_drops_it(client: Outlit) -> None:
    with record(client) as events:
        client.track(event_name="big", email="j@acme.com", properties={"blob": "x" * 1_100_000})
        with pytest.raises(ContractError, match="too_large"):
            events.of_type("custom")


def test_a_malformed_public_key_fails() -> None:
    transport = RecordingTransport()
    with Outlit(public_key="pk_not.valid", transport=transport) as client:
        client.track(event_name="signup", email="jane@acme.com")
        with pytest.raises(ContractError, match=re.escape("public key 'pk_not.valid'")):
            transport.events.of_type("custom")


def test_strict_false_collects_problems_instead_of_raising(client: Outlit) -> None:
    with record(client, strict=False) as events:
        client.track(event_name="ok", email="jane@acme.com")
        queue_refused(client, "bad", timestamp=-1)
        assert [event["eventName"] for event in events] == ["ok"]
        (problem,) = events.problems
    assert problem.reason == "contract"
    assert problem.event is not None and problem.event["eventName"] == "bad"
    assert "timestamp" in str(problem)


def test_events_queued_before_the_block_are_set_aside(client: Outlit) -> None:
    client.track(event_name="before", email="jane@acme.com")
    with record(client) as events:
        client.track(event_name="inside", email="jane@acme.com")
        assert [event["eventName"] for event in events] == ["inside"]
    assert client.queue_size == 0


def test_the_client_sends_normally_after_the_block(collector: Collector) -> None:
    with Outlit(public_key=KEY, api_host=collector.url) as client:
        with record(client) as events:
            client.track(event_name="recorded", email="jane@acme.com")
            assert len(events) == 1
        client.track(event_name="sent", email="jane@acme.com")
        assert client.flush(timeout=5)
    stored = collector.wait_for_events(1)
    assert [event["eventName"] for event in stored] == ["sent"]
    assert collector.stats.events_stored == 1


def test_record_without_clients_takes_every_client() -> None:
    # A listening socket stands for the service (a Collector running in this process would
    # be left alone, as a test's own): any connection to it shows that something was sent.
    with socket.socket() as service:
        service.bind(("127.0.0.1", 0))
        service.listen()
        url = f"http://127.0.0.1:{service.getsockname()[1]}"

        def connections_waiting() -> bool:
            return bool(select.select([service], [], [], 0)[0])

        existing = Outlit(public_key=KEY, api_host=url)
        mocked = MockTransport()
        created = own_transport = None
        try:
            with record() as events:
                created = Outlit(public_key=KEY, api_host=url)
                own_transport = Outlit(public_key=KEY, transport=mocked)
                existing.track(event_name="from_existing", email="a@acme.com")
                created.track(event_name="from_created", email="b@acme.com")
                own_transport.track(event_name="kept_its_transport", email="c@acme.com")
                assert sorted(e["eventName"] for e in events) == ["from_created", "from_existing"]
                own_transport.flush(timeout=5)
            # A client made with its own transport keeps it; nothing reached the service.
            assert [e["eventName"] for e in mocked.events] == ["kept_its_transport"]
            assert not connections_waiting()
            # Afterwards every client is back on its own transport: this one connects.
            created.track(event_name="after", email="b@acme.com")
            assert not created.flush(timeout=0.5)  # nobody answers on that socket
            assert connections_waiting()
        finally:
            for made in (existing, created, own_transport):
                if made is not None:
                    made.shutdown(timeout=0)


def test_clients_sending_to_an_excepted_host_keep_sending(collector: Collector) -> None:
    # The same host however it is spelled: scheme and host in any case, a trailing slash.
    spelled = collector.url.upper() + "/"
    existing = Outlit(public_key=KEY, api_host=collector.url)
    try:
        with record(except_hosts=[spelled]) as events:
            with Outlit(public_key=KEY, api_host=collector.url + "/") as created:
                created.track(event_name="sent", email="a@acme.com")
            existing.track(event_name="also_sent", email="b@acme.com")
            assert existing.flush(timeout=5)
            with Outlit(public_key=KEY, api_host="http://127.0.0.1:9") as other:
                other.track(event_name="recorded", email="c@acme.com")
            assert [e["eventName"] for e in events] == ["recorded"]
        stored = collector.wait_for_events(2)
        assert sorted(e["eventName"] for e in stored) == ["also_sent", "sent"]
    finally:
        existing.shutdown(timeout=1)


def test_except_hosts_refuses_a_single_string(collector: Collector) -> None:
    with pytest.raises(TypeError, match="a list of URLs"), record(except_hosts=collector.url):
        pass


def test_clients_created_after_the_block_are_not_recorded(collector: Collector) -> None:
    with record() as events:
        pass
    with Outlit(public_key=KEY, api_host=collector.url) as later:
        later.track(event_name="after", email="jane@acme.com")
        assert later.flush(timeout=5)
    assert len(events) == 0
    assert collector.stats.events_stored == 1


def test_clear_forgets_what_was_recorded(client: Outlit) -> None:
    with record(client) as events:
        client.track(event_name="first", email="jane@acme.com")
        events.clear()
        client.track(event_name="second", email="jane@acme.com")
        assert [event["eventName"] for event in events] == ["second"]


def test_helpers_select_by_type_name_and_fields(client: Outlit) -> None:
    with record(client) as events:
        client.track(event_name="signup", email="a@acme.com", properties={"plan": "pro"})
        client.track(event_name="signup", email="b@acme.com")
        client.identify(user_id="usr_1", customer_traits={"seats": 50})
        client.customer.paid(customer_domain="acme.com", properties={"amount": 99})
        assert len(events.of_type("custom")) == 2
        assert len(events.named("signup")) == 2
        assert events.where(email="b@acme.com")[0]["eventName"] == "signup"
        assert find_events(events, type="identify", user_id="usr_1")
        assert len(events.uuids) == len(set(events.uuids)) == 4


def test_assert_tracked_matches_a_subset_of_properties(client: Outlit) -> None:
    with record(client) as events:
        client.track(
            event_name="subscription_upgraded",
            email="user@example.com",
            customer_id="cust_123",
            properties={"fromPlan": "starter", "toPlan": "pro", "mrr": 99},
        )
        found = assert_tracked(
            events,
            event_name="subscription_upgraded",
            customer_id="cust_123",
            properties={"toPlan": "pro"},
        )
    assert found["properties"]["mrr"] == 99


def test_a_call_dropped_for_its_identity_fails_the_test_that_made_it(client: Outlit) -> None:
    # Counted on the caller's thread; the worker signalled it only when it next woke, so the
    # ContractError went to whichever later test was reading then (or to none).
    def session_user() -> dict[str, str]:
        raise LookupError("session store down")

    with (
        pytest.raises(ContractError, match="identity_failed: 1 event dropped"),
        record(client) as events,
    ):
        client.bind(session_user).track(event_name="report_exported")
        assert list(events) == []  # the read raises: the drop is this test's


def test_the_recorder_is_not_paced_as_the_service_is(
    client: Outlit, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The client keeps to the service's 100 requests per second; the recorder has no service
    # behind it, so a read right after each call must not wait out that gap.
    from outlit import _worker

    slept: list[float] = []
    monkeypatch.setattr(_worker.time, "sleep", lambda seconds: slept.append(seconds))
    with record(client) as events:
        for n in range(5):
            client.track(event_name="item_added", email="jane@acme.com", properties={"n": n})
            assert_tracked(events, "item_added", properties={"n": n})
    assert slept == []
    paced = Outlit(public_key=KEY, transport=MockTransport())
    try:
        for _ in range(3):
            paced.track(event_name="item_added", email="jane@acme.com")
            assert paced.flush(timeout=5)
    finally:
        paced.shutdown(timeout=1)
    assert len(slept) >= 2  # a real transport is paced


def test_assert_tracked_failure_lists_what_was_recorded(client: Outlit) -> None:
    with record(client) as events:
        client.track(event_name="login", email="jane@acme.com")
        with pytest.raises(AssertionError) as failure:
            assert_tracked(events, "signup", email="jane@acme.com")
    message = str(failure.value)
    assert "expected a custom event with event_name='signup', email='jane@acme.com'" in message
    assert "custom 'login' email='jane@acme.com'" in message


def test_a_failure_shows_the_recorded_value_of_each_field_it_names(client: Outlit) -> None:
    with record(client) as events:
        client.track(event_name="report_exported", email="a@x.com", properties={"format": "pdf"})
        with pytest.raises(AssertionError) as failure:
            assert_tracked(events, "report_exported", properties={"format": "csv"})
    # The line shows what was recorded for the field that did not match.
    assert "custom 'report_exported' email='a@x.com' properties={'format': 'pdf'}" in str(
        failure.value
    )


def test_assert_tracked_with_count(client: Outlit) -> None:
    with record(client) as events:
        client.track(event_name="ping", fingerprint="dev_1")
        client.track(event_name="ping", fingerprint="dev_1")
        assert_tracked(events, "ping", count=2)
        with pytest.raises(
            AssertionError, match="expected 1 custom event with event_name='ping', found 2"
        ):
            assert_tracked(events, "ping", count=1)


def test_assert_not_tracked(client: Outlit) -> None:
    with record(client) as events:
        client.track(event_name="login", email="jane@acme.com")
        assert_not_tracked(events, "signup")
        with pytest.raises(
            AssertionError, match="expected 0 custom events with event_name='login', found 1"
        ):
            assert_not_tracked(events, "login")
        client.identify(email="jane@acme.com")
        with pytest.raises(AssertionError, match="expected an identify event with email="):
            assert_identified(events, email="bob@acme.com")


def test_assert_stage_reads_the_identity_where_the_wire_carries_it(client: Outlit) -> None:
    with record(client) as events:
        client.user.engaged(user_id="usr_123", properties={"milestone": "first_project"})
        event = assert_stage(
            events, "engaged", user_id="usr_123", properties={"milestone": "first_project"}
        )
    assert event["properties"]["__userId"] == "usr_123"
    assert event["properties"]["__email"] is None
    with pytest.raises(AssertionError):
        assert_stage(events, "engaged", email="usr_123")


def test_assert_billing(client: Outlit) -> None:
    with record(client) as events:
        client.customer.churned(customer_domain="acme.com", properties={"reason": "price"})
        event = assert_billing(events, "churned", customer_domain="acme.com", domain="acme.com")
    assert event["properties"] == {"reason": "price"}


def test_a_misspelt_field_is_a_type_error(client: Outlit) -> None:
    with record(client) as events:
        client.track(event_name="signup", email="jane@acme.com")
        with pytest.raises(TypeError, match="unknown event field 'event'"):
            assert_tracked(events, event="signup")


def test_assertions_work_on_any_list_of_wire_events(collector: Collector) -> None:
    with Outlit(public_key=KEY, api_host=collector.url) as client:
        client.track(event_name="signup", email="jane@acme.com")
        client.flush(timeout=5)
    assert_tracked(collector.wait_for_events(1), "signup", email="jane@acme.com")
