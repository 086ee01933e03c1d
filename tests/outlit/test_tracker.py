"""Request-bound trackers (``client.bind(...)``): the current user's identity fills in what a
call leaves out, never what it names, and the identity hook is app code that may fail."""

from __future__ import annotations

import copy
import gc
import logging
import pickle
import weakref
from collections.abc import Iterator, Mapping
from functools import partial
from types import MappingProxyType, SimpleNamespace
from typing import Any

import pytest

from outlit import BoundTracker, InvalidEventError, MockTransport, Outlit
from outlit._tracker import NOT_HERE, lookup_tracker, user_identity

try:
    from ._helpers import ClientFactory, client_factory, sent_events
except ImportError:
    from _helpers import ClientFactory, client_factory, sent_events

JANE = {"email": "jane@acme.com", "user_id": "usr_1"}


@pytest.fixture
def clients() -> Iterator[ClientFactory]:
    with client_factory() as factory:
        yield factory


@pytest.fixture
def client(clients: ClientFactory) -> Any:
    return clients()


class CountingResolver:
    def __init__(self, identity: Any = None, error: Exception | None = None) -> None:
        self.identity = identity
        self.error = error
        self.calls = 0

    def __call__(self) -> Any:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return self.identity


# -- filling in --------------------------------------------------------------------------------


def test_bound_track_without_identity_uses_the_bound_user(client):
    c, transport = client
    tracker = c.bind(JANE)
    assert isinstance(tracker, BoundTracker)
    tracker.track(event_name="report_exported", properties={"format": "pdf"})
    (event,) = sent_events(c, transport)
    assert event["email"] == "jane@acme.com"
    assert event["userId"] == "usr_1"
    assert event["url"] == "server://jane@acme.com"
    assert event["properties"] == {"format": "pdf"}


def test_explicit_identity_wins_and_is_never_mixed_with_the_bound_one(client):
    c, transport = client
    tracker = c.bind(JANE)
    tracker.track(event_name="admin_action", user_id="usr_other")
    tracker.track(event_name="for_account", customer_id="cust_9")
    tracker.user.activate(fingerprint="device-7")
    by_user, by_customer, stage = sent_events(c, transport)
    assert by_user["userId"] == "usr_other"
    assert "email" not in by_user
    assert by_customer["customerId"] == "cust_9"
    assert not {"email", "userId"} & set(by_customer)
    assert stage["properties"]["__fingerprint"] == "device-7"
    assert stage["properties"]["__email"] is None
    assert stage["properties"]["__userId"] is None


FULL_BOUND = {
    "email": "jane@acme.com",
    "user_id": "usr_1",
    "fingerprint": "fp_1",
    "customer_id": "cust_1",
    "customer_domain": "acme.com",
}
WIRE_NAMES = {
    "email": "email",
    "user_id": "userId",
    "fingerprint": "fingerprint",
    "customer_id": "customerId",
    "customer_domain": "customerDomain",
}


def test_bound_track_passes_timestamp_and_properties_and_fills_every_identity_field(client):
    c, transport = client
    c.bind(FULL_BOUND).track(
        event_name="e", timestamp=1_700_000_000_123, properties={"plan": "pro"}
    )
    (event,) = sent_events(c, transport)
    assert event["timestamp"] == 1_700_000_000_123
    assert event["properties"] == {"plan": "pro"}
    assert {WIRE_NAMES[key]: event[WIRE_NAMES[key]] for key in FULL_BOUND} == {
        WIRE_NAMES[key]: value for key, value in FULL_BOUND.items()
    }


@pytest.mark.parametrize("field", sorted(WIRE_NAMES))
def test_any_one_explicit_identity_field_is_sent_alone(client, field):
    c, transport = client
    c.bind(FULL_BOUND).track(event_name="e", timestamp=5, **{field: "given"})
    (event,) = sent_events(c, transport)
    assert event[WIRE_NAMES[field]] == "given"
    assert event["timestamp"] == 5
    # Nothing of the bound identity is mixed in.
    assert not (set(WIRE_NAMES.values()) - {WIRE_NAMES[field]}) & set(event)


def test_bound_identify_fills_the_user(client):
    c, transport = client
    tracker = c.bind(JANE)
    tracker.identify(traits={"role": "admin"})
    tracker.user.identify(traits={"role": "owner"})
    first, second = sent_events(c, transport)
    for event in (first, second):
        assert event["type"] == "identify"
        assert (event["email"], event["userId"]) == ("jane@acme.com", "usr_1")
    assert second["traits"] == {"role": "owner"}


def test_bound_identify_with_only_customer_fields_still_identifies_the_user(client):
    # identify's identity is email/user_id; customer_id is an optional addition to it
    c, transport = client
    tracker = c.bind(JANE)
    tracker.identify(customer_id="cust_1", customer_traits={"plan": "pro"})
    (event,) = sent_events(c, transport)
    assert (event["email"], event["userId"], event["customerId"]) == (
        "jane@acme.com",
        "usr_1",
        "cust_1",
    )


@pytest.mark.parametrize(
    ("method", "stage"),
    [("activate", "activated"), ("engaged", "engaged"), ("inactive", "inactive")],
)
def test_bound_stage_calls_fill_the_user_markers(client, method, stage):
    c, transport = client
    getattr(c.bind(JANE).user, method)(properties={"flow": "onboarding"})
    (event,) = sent_events(c, transport)
    assert event["stage"] == stage
    assert event["properties"] == {
        "flow": "onboarding",
        "__fingerprint": None,
        "__email": "jane@acme.com",
        "__userId": "usr_1",
    }


@pytest.mark.parametrize("status", ["trialing", "paid", "churned"])
def test_bound_billing_calls_fill_the_customer(client, status):
    c, transport = client
    tracker = c.bind({"customer_id": "cust_1", "customer_domain": "acme.com", **JANE})
    getattr(tracker.customer, status)(properties={"plan": "pro"})
    (event,) = sent_events(c, transport)
    assert (event["status"], event["customerId"], event["domain"]) == (status, "cust_1", "acme.com")
    assert not {"email", "userId"} & set(event)  # billing targets accounts, not contacts


def test_bound_billing_with_an_explicit_stripe_id_is_not_mixed_with_the_bound_customer(client):
    c, transport = client
    tracker = c.bind({"customer_id": "cust_bound"})
    tracker.customer.paid(stripe_customer_id="cus_stripe")
    (event,) = sent_events(c, transport)
    assert event["stripeCustomerId"] == "cus_stripe"
    assert "customerId" not in event, "the stripe id named the account; the bound one was mixed in"


def test_bound_billing_without_a_customer_raises_naming_the_fields(client):
    c, _ = client
    with pytest.raises(ValueError) as raised:
        c.bind(JANE).customer.paid()
    assert "customer_id" in str(raised.value)
    assert "customer_domain" in str(raised.value)


def test_a_tracker_bound_to_nobody_behaves_like_the_client(client):
    c, transport = client
    tracker = c.bind()
    with pytest.raises(ValueError, match="email"):
        tracker.track(event_name="e")
    tracker.track(event_name="e", email="a@x.com")
    assert [e["email"] for e in sent_events(c, transport)] == ["a@x.com"]


def test_bound_identity_keeps_only_identity_fields(client):
    c, transport = client
    tracker = c.bind({"email": "", "user_id": None, "fingerprint": "fp", "password": "hunter2"})
    assert tracker.identity == {"fingerprint": "fp"}
    tracker.track(event_name="e")
    (event,) = sent_events(c, transport)
    assert event["fingerprint"] == "fp"
    assert "hunter2" not in transport.requests[0].body.decode()


# -- the identity function -------------------------------------------------------------------


def test_identity_function_is_called_lazily_and_at_most_once(client):
    c, transport = client
    resolver = CountingResolver(JANE)
    tracker = c.bind(resolver)
    assert resolver.calls == 0  # binding costs nothing
    tracker.track(event_name="explicit", email="other@x.com")
    assert resolver.calls == 0  # not needed: the call named its identity
    tracker.track(event_name="implicit1")
    tracker.user.engaged()
    tracker.identify(traits={"a": 1})
    assert resolver.calls == 1
    events = sent_events(c, transport)
    assert [e.get("email") or e["properties"]["__email"] for e in events] == [
        "other@x.com",
        "jane@acme.com",
        "jane@acme.com",
        "jane@acme.com",
    ]


def test_identity_function_returning_nothing_is_asked_only_once(client):
    c, _ = client
    resolver = CountingResolver(None)
    tracker = c.bind(resolver)
    for _ in range(3):
        with pytest.raises(ValueError):
            tracker.track(event_name="e")
    assert resolver.calls == 1
    assert tracker.identity == {}


def test_a_raising_identity_function_never_raises_into_the_request(client, caplog):
    # The identity function failing (its session store is down, say) is not the view's
    # programming error: calls that rely on it are dropped, counted and signalled, and the
    # request goes on; calls that name an identity of their own are sent.
    from outlit import signals

    caplog.set_level(logging.ERROR, logger="outlit")
    c, transport = client
    resolver = CountingResolver(error=LookupError("session store down"))
    tracker = c.bind(resolver)
    dropped: list[tuple[int, str]] = []

    def on_dropped(sender: Any, count: int, reason: str, **extra: Any) -> None:
        dropped.append((count, reason))

    with signals.events_dropped.connected_to(on_dropped, sender=c):
        tracker.track(event_name="needs_identity")
        tracker.track(event_name="explicit", email="a@x.com")
        tracker.user.activate()
        tracker.identify(traits={"plan": "pro"})
        tracker.customer.paid(properties={"plan": "pro"})
        tracker.customer.churned(customer_domain="acme.com")
        assert [e.get("eventName") or e["type"] for e in sent_events(c, transport)] == [
            "explicit",
            "billing",
        ]
    assert resolver.calls == 1
    errors = [r for r in caplog.records if r.name == "outlit" and r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert "session store down" in str(errors[0].exc_info[1])
    assert "not sent (counted as dropped, reason identity_failed)" in errors[0].getMessage()
    stats = c.stats
    assert stats.dropped_by_reason == {"identity_failed": 4}
    assert (stats.enqueued, stats.delivered) == (2, 2)  # the dropped ones were never queued
    assert dropped == [(4, "identity_failed")]


def test_an_identity_failure_drops_nothing_on_a_disabled_client_and_raises_after_shutdown(
    clients,
):
    failing = CountingResolver(error=LookupError("down"))
    disabled, _ = clients(enabled=False)
    disabled.bind(failing).track(event_name="e")
    assert disabled.stats.dropped == 0
    closed, _ = clients()
    tracker = closed.bind(CountingResolver(error=LookupError("down")))
    closed.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        tracker.track(event_name="e")


@pytest.mark.parametrize("answer", ["jane@example.com", 42, [("email", "a@x.com")], object()])
def test_an_identity_function_returning_no_mapping_is_logged_and_tracking_goes_on(
    client, caplog, answer
):
    # e.g. an identity loader that returns the user object instead of its fields
    caplog.set_level(logging.ERROR, logger="outlit")
    c, transport = client
    tracker = c.bind(lambda: answer)
    tracker.track(event_name="needs_identity")  # dropped, not raised into the request
    tracker.track(event_name="explicit", email="a@x.com")
    assert tracker.identity == {}
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [
        f"outlit: the identity function returned a {type(answer).__name__}, not a mapping of "
        "identity fields (email, user_id, fingerprint, customer_id, customer_domain); "
        "calls that name no identity of their own are not sent (counted as dropped, reason "
        "identity_failed)"
    ]
    assert [e["eventName"] for e in sent_events(c, transport)] == ["explicit"]
    assert c.stats.dropped_by_reason == {"identity_failed": 1}


@pytest.mark.parametrize(
    ("answer", "hint"),
    [
        ({"userId": "u1", "customerDomain": "acme.com"}, "'customerDomain' -> 'customer_domain'"),
        ({"user": "u1"}, "'user' -> 'user_id'"),
        ({"id": 7, "name": "Ada"}, ""),
    ],
)
def test_an_answer_spelling_the_fields_otherwise_is_logged_and_tracking_goes_on(
    client, caplog, answer, hint
):
    caplog.set_level(logging.ERROR, logger="outlit")
    c, transport = client
    tracker = c.bind(lambda: answer)
    tracker.track(event_name="needs_identity")  # dropped and counted, not raised
    tracker.track(event_name="explicit", email="a@x.com")
    (said,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert said.startswith("outlit: the identity function's answer names none of the identity")
    assert hint in said
    assert [e["eventName"] for e in sent_events(c, transport)] == ["explicit"]
    assert c.stats.dropped_by_reason == {"identity_failed": 1}


def test_a_sync_function_returning_a_coroutine_is_told_to_be_async(client, caplog):
    async def lookup() -> dict[str, str]:
        return {"user_id": "u1"}

    caplog.set_level(logging.ERROR, logger="outlit")
    c, _ = client
    tracker = c.bind(lambda: lookup())  # a sync wrapper around an async function
    tracker.track(event_name="needs_identity")
    (said,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert "returned a coroutine" in said and "make it `async def`" in said
    assert c.stats.dropped_by_reason == {"identity_failed": 1}


@pytest.mark.parametrize(
    "answer",
    [
        None,
        {},
        {"email": "  ", "user_id": ""},
        {"user_id": None, "email": None},
        {"user_id": None, "name": None},  # an identity field, and another key, both empty
        {"is_authenticated": False},
    ],
)
def test_an_identity_function_that_finds_no_user_leaves_the_call_to_raise(client, caplog, answer):
    # Not a failure: an anonymous request. A call there without an identity of its own is
    # the view's programming error, which surfaces at the call site as in the core client.
    c, _ = client
    tracker = c.bind(lambda: answer)
    with pytest.raises(InvalidEventError, match="needs at least one of") as raised:
        tracker.track(event_name="needs_identity")
    if answer is None or answer == {}:
        # Says why, for a newcomer whose first snippet has no signed-in user yet.
        assert "the request has none to fill in (no signed-in user" in str(raised.value)
    with pytest.raises(InvalidEventError, match="needs at least one of"):
        tracker.user.activate()
    assert c.stats.dropped == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_identity_values_of_key_types_become_strings_and_others_are_left_out(client, caplog):
    import uuid

    caplog.set_level(logging.ERROR, logger="outlit")
    c, transport = client
    key = uuid.UUID(int=1)
    tracker = c.bind(
        lambda: {"user_id": key, "customer_id": 42, "email": 1.5, "customer_domain": ""}
    )
    tracker.track(event_name="e")
    (event,) = sent_events(c, transport)
    assert (event["userId"], event["customerId"]) == (str(key), "42")
    assert "email" not in event and "customerDomain" not in event
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
        "outlit: the identity function's email must be a string, got float; "
        "left out of the identity"
    ]


class _UnreadableMapping(Mapping[str, Any]):
    def __getitem__(self, key: str) -> Any:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("iteration failed")

    def __len__(self) -> int:
        return 1


class _NoTruth:
    def __bool__(self) -> bool:
        raise ValueError("ambiguous")


class _LazyValue(str):
    """Stands in for a lazy proxy whose value cannot be loaded (the database is down)."""

    def __str__(self) -> str:
        raise RuntimeError("database is down")


@pytest.mark.parametrize(
    "answer",
    [_UnreadableMapping(), _NoTruth()],
    ids=["mapping_raising", "truth_raising"],
)
def test_an_unreadable_identity_answer_is_logged_and_tracking_goes_on(client, caplog, answer):
    caplog.set_level(logging.ERROR, logger="outlit")
    c, transport = client
    tracker = c.bind(lambda: answer)
    tracker.track(event_name="needs_identity")  # dropped, not raised into the request
    tracker.track(event_name="explicit", email="a@x.com")
    assert c.stats.dropped_by_reason == {"identity_failed": 1}
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None
    assert "could not be read" in errors[0].getMessage()
    assert [e["eventName"] for e in sent_events(c, transport)] == ["explicit"]


def test_an_identity_value_that_cannot_be_read_is_left_out_alone(client, caplog):
    caplog.set_level(logging.ERROR, logger="outlit")
    c, transport = client
    tracker = c.bind(lambda: {"email": _LazyValue("x"), "user_id": "u1"})
    tracker.track(event_name="e")
    (event,) = sent_events(c, transport)
    assert event["userId"] == "u1" and "email" not in event
    (error,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert error.getMessage() == (
        "outlit: the identity function's email could not be read; left out of the identity"
    )
    assert "database is down" in str(error.exc_info[1])


def test_identity_property_is_a_copy(client):
    c, _ = client
    tracker = c.bind(dict(JANE))
    tracker.identity["email"] = "changed@x.com"
    assert tracker.identity["email"] == "jane@acme.com"


def test_bound_tracker_flushes_and_reports_the_client_queue(client):
    c, transport = client
    tracker = c.bind(JANE)
    tracker.track(event_name="e")
    assert tracker.queue_size == 1 == c.queue_size
    assert tracker.flush(timeout=5)
    assert tracker.queue_size == 0
    assert tracker.client is c
    assert len(transport.requests) == 1


def test_bound_tracker_after_shutdown_raises_runtime_error(client):
    c, _ = client
    tracker = c.bind(JANE)
    c.shutdown()
    with pytest.raises(RuntimeError):
        tracker.track(event_name="e")


def test_repr_does_not_leak_identity_values(client):
    c, _ = client
    text = repr(c.bind(JANE))
    assert "jane@acme.com" not in text
    assert "email" in text


def test_identity_fields_given_as_none_count_as_not_named(client):
    c, transport = client
    tracker = c.bind(JANE)
    options: dict[str, Any] = {"event_name": "e", "email": None, "user_id": None}
    tracker.track(**options)
    assert options == {"event_name": "e", "email": None, "user_id": None}  # the caller's dict
    (event,) = sent_events(c, transport)
    assert (event["email"], event["userId"]) == ("jane@acme.com", "usr_1")


def test_an_identity_function_may_return_any_mapping(client):
    c, transport = client
    found = MappingProxyType({**JANE, "fingerprint": "", "password": "hunter2"})
    tracker = c.bind(lambda: found)
    tracker.track(event_name="e")
    assert tracker.identity == JANE
    (event,) = sent_events(c, transport)
    assert (event["email"], event["userId"]) == ("jane@acme.com", "usr_1")


def test_user_and_customer_helpers_fill_the_bound_identity_each_time(client):
    c, transport = client
    resolver = CountingResolver({**JANE, "customer_id": "cust_1"})
    tracker = c.bind(resolver)
    tracker.user.activate()
    tracker.customer.paid()
    tracker.user.engaged()
    assert resolver.calls == 1
    activated, paid, engaged = sent_events(c, transport)
    assert activated["properties"]["__userId"] == engaged["properties"]["__userId"] == "usr_1"
    assert paid["customerId"] == "cust_1"


# -- memory: a request's objects must be freed without the cyclic garbage collector ----------


class FakeRequest:
    """Stands for a framework request: it holds its tracker, and can be weakly referenced."""

    outlit: Any = None


def request_identity(request: FakeRequest) -> dict[str, str]:
    return JANE


@pytest.fixture
def no_gc() -> Iterator[None]:
    # With the collector off, an object in a reference cycle outlives its last reference.
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_a_tracker_and_its_helpers_form_no_reference_cycle(client, no_gc):
    c, _ = client
    owner = FakeRequest()
    tracker = c.bind(partial(request_identity, owner))
    tracker.user.activate()
    tracker.customer  # noqa: B018 - the helper objects once made
    alive = weakref.ref(owner)
    del owner, tracker
    assert alive() is None, "the tracker outlived its last reference (a reference cycle)"


def test_the_identity_source_is_let_go_once_the_identity_is_known(client, no_gc):
    c, transport = client
    request = FakeRequest()
    # The request holds its tracker, whose source holds the request: a cycle until resolved.
    request.outlit = tracker = c.bind(partial(request_identity, request))
    alive = weakref.ref(request)
    tracker.track(event_name="e")
    del request
    assert alive() is None, "the request was kept by its tracker after the identity was known"
    assert tracker.identity == JANE
    tracker.user.engaged()
    assert [e.get("email") or e["properties"]["__email"] for e in sent_events(c, transport)] == [
        "jane@acme.com",
        "jane@acme.com",
    ]


def test_a_lookup_tracker_calls_its_lookup_once_with_its_subject_then_lets_go(client, no_gc):
    c, transport = client
    request = FakeRequest()
    calls: list[Any] = []

    def lookup(subject: FakeRequest) -> dict[str, str]:
        calls.append(subject)
        return JANE

    request.outlit = tracker = lookup_tracker(c, lookup, request)
    assert isinstance(tracker, BoundTracker)
    alive = weakref.ref(request)
    tracker.track(event_name="a")
    tracker.track(event_name="b", properties={"n": 1})
    tracker.user.engaged()
    assert calls == [request]
    calls.clear()
    del request
    assert alive() is None, "the subject was kept by its tracker after the identity was known"
    events = sent_events(c, transport)
    assert [e.get("userId") or e["properties"]["__userId"] for e in events] == ["usr_1"] * 3
    assert repr(tracker).startswith("<BoundTracker identity=['email', 'user_id']")


def test_a_lookup_that_cannot_know_here_keeps_nothing(client):
    # An adapter's lookup asked where it cannot know the identity (Flask's, on another thread)
    # answers NOT_HERE: that call has no identity, and the next one asks again.
    c, transport = client
    answers: list[Any] = [NOT_HERE, NOT_HERE, JANE]
    subject = object()
    calls: list[Any] = []

    def lookup(asked: object) -> Any:
        calls.append(asked)
        return answers.pop(0)

    tracker = lookup_tracker(c, lookup, subject)
    with pytest.raises(InvalidEventError):
        tracker.track(event_name="elsewhere")
    assert tracker.identity == {}
    tracker.track(event_name="at_home")  # the lookup answers, and that answer is kept
    tracker.track(event_name="again")
    assert calls == [subject] * 3
    events = sent_events(c, transport)
    assert [(e["eventName"], e["userId"]) for e in events] == [
        ("at_home", "usr_1"),
        ("again", "usr_1"),
    ]
    assert not NOT_HERE


def test_a_lookup_tracker_logs_a_failing_lookup_and_names_what_is_missing(client, caplog):
    c, _ = client

    def lookup(subject: Any) -> dict[str, str]:
        raise RuntimeError("database down")

    tracker = lookup_tracker(c, lookup, object())
    tracker.track(event_name="e")
    assert "the identity function raised" in caplog.text
    assert tracker.identity == {}
    assert c.stats.dropped_by_reason == {"identity_failed": 1}


def test_bind_refuses_a_tuple_which_a_lookup_trackers_source_would_be(client):
    c, _ = client
    with pytest.raises(TypeError, match=r"identity must be a mapping .* got a tuple"):
        c.bind(("email", "jane@acme.com"))


# -- user_identity ---------------------------------------------------------------------------


def django_like(**attrs: Any) -> Any:
    return SimpleNamespace(is_authenticated=True, **attrs)


@pytest.mark.parametrize(
    ("user", "identity"),
    [
        (None, {}),
        (SimpleNamespace(is_authenticated=False, pk=None, email=""), {}),
        (SimpleNamespace(pk=5, email="a@x.com"), {}),  # no is_authenticated: not a user
        (django_like(pk=5, email="a@x.com"), {"user_id": "5", "email": "a@x.com"}),
        (django_like(pk=5, id=99, email="  a@x.com  "), {"user_id": "5", "email": "a@x.com"}),
        (django_like(pk=None, id=7, email=""), {"user_id": "7"}),
        (django_like(id=7, email="   "), {"user_id": "7"}),
        (django_like(id=7, email=None), {"user_id": "7"}),
        (django_like(id=7, email=42), {"user_id": "7"}),
        (django_like(get_id=lambda: "flask-9"), {"user_id": "flask-9"}),
        (django_like(pk=0), {"user_id": "0"}),
        (django_like(pk="  "), {}),
        (django_like(email="only@x.com"), {"email": "only@x.com"}),
        (
            django_like(
                pk=3, email="", work_email="w@x.com", get_email_field_name=lambda: "work_email"
            ),
            {"user_id": "3", "email": "w@x.com"},
        ),
        (
            django_like(pk=3, email="a@x.com", get_email_field_name=lambda: 1 / 0),
            {"user_id": "3", "email": "a@x.com"},
        ),
        (
            django_like(pk=3, email="a@x.com", get_email_field_name=lambda: object()),
            {"user_id": "3", "email": "a@x.com"},
        ),
    ],
    ids=[
        "none",
        "anonymous",
        "not-a-user",
        "pk-and-email",
        "pk-before-id",
        "id",
        "blank-email",
        "none-email",
        "non-str-email",
        "get_id",
        "zero-pk",
        "blank-pk",
        "email-only",
        "django-EMAIL_FIELD",
        "email-field-name-raises",
        "email-field-name-not-a-string",
    ],
)
def test_user_identity_of_framework_user_objects(user, identity):
    assert user_identity(user) == identity


def test_user_identity_with_an_anonymous_flask_login_style_user():
    class AnonymousUser:
        is_authenticated = False
        is_anonymous = True

        def get_id(self) -> None:
            raise AssertionError("an anonymous user's id must not be read")

    assert user_identity(AnonymousUser()) == {}


def test_bind_with_user_identity_tracks_the_request_user(client):
    c, transport = client
    user = django_like(pk=12, email="jane@acme.com")
    tracker = c.bind(lambda: user_identity(user))
    tracker.track(event_name="report_exported")
    (event,) = sent_events(c, transport)
    assert (event["userId"], event["email"]) == ("12", "jane@acme.com")


def test_a_tracker_can_be_copied_and_pickled() -> None:
    # With or without the compiled base (BoundTracker then holds its attributes in C).
    client = Outlit(public_key="pk_test_unit", transport=MockTransport())
    try:
        tracker = lookup_tracker(client, _identity_of, "u-1")
        copied = copy.copy(tracker)
        assert type(copied) is BoundTracker
        assert (copied._client, copied._source, copied._ids) == (
            client,
            (_identity_of, "u-1"),
            None,
        )
        assert copied.identity == {"user_id": "u-1"} and tracker._ids is None
        restored = pickle.loads(pickle.dumps(BoundTracker(None, {"email": "jane@acme.com"})))
        assert restored.identity == {"email": "jane@acme.com"}
    finally:
        client.shutdown(0.3)


def _identity_of(subject: str) -> dict[str, str]:
    return {"user_id": subject}
