"""What a user's type checker says of code that uses the client as the README shows: ids that
the client takes at run time (ints, UUIDs) and None for "not given" type-check on every
method, the client's and a bound tracker's alike; a misspelt keyword does not."""

from __future__ import annotations

import sys
import textwrap
import typing
import uuid
from collections.abc import Callable

import pytest

import outlit
from outlit import MockTransport, Outlit

TypeErrors = Callable[[str], dict[int, str]]

USER_CODE = textwrap.dedent(
    """
    import uuid

    from outlit import MockTransport, Outlit

    outlit = Outlit(public_key="pk_test", transport=MockTransport())
    key = uuid.UUID(int=1)

    def on_signup(email: str | None, user_id: int | None, domain: str | None) -> None:
        outlit.track(event_name="signed_up", user_id=42, customer_id=7, fingerprint=key)
        outlit.track(event_name="signed_up", email=email, user_id=user_id, customer_id=key)
        outlit.identify(email=email, user_id=user_id, customer_domain=domain)
        outlit.user.identify(email=email, user_id=user_id, customer_domain=domain)
        outlit.user.activate(email=email, user_id=user_id, fingerprint=key)
        outlit.customer.paid(customer_id=7, customer_domain=domain, stripe_customer_id=None)
        tracker = outlit.bind({"email": "jane@acme.com", "customer_domain": "acme.com"})
        tracker.track(event_name="report_exported", user_id=user_id, customer_id=key)
        tracker.identify(email=email, user_id=user_id, timestamp=None)
        tracker.user.activate(email=email, user_id=user_id, properties=None)
        tracker.customer.paid(customer_id=7, customer_domain=domain)
    """
)

MISTAKES = textwrap.dedent(
    """
    from outlit import MockTransport, Outlit

    outlit = Outlit(public_key="pk_test", transport=MockTransport())
    tracker = outlit.bind({"email": "jane@acme.com"})
    outlit.track(event_name="x", email=42)
    tracker.user.activate(emial="jane@acme.com")
    tracker.customer.paid(customer_id=7.5)
    outlit.bind(("email", "jane@acme.com"))
    """
)


def test_ids_and_none_type_check_as_the_client_takes_them(type_errors: TypeErrors) -> None:
    assert type_errors(USER_CODE) == {}
    # And the same calls run: what the checker accepts, the client takes.
    namespace: dict[str, object] = {}
    exec(compile(USER_CODE, "user_code.py", "exec"), namespace)
    client = namespace["outlit"]
    assert isinstance(client, Outlit) and isinstance(client._transport, MockTransport)
    namespace["on_signup"]("jane@acme.com", 42, None)  # type: ignore[operator]
    assert client.flush(timeout=5)
    events = client._transport.events
    client.shutdown()
    assert len(events) == 10
    assert events[0]["userId"] == "42" and events[0]["customerId"] == "7"
    assert events[0]["fingerprint"] == "00000000-0000-0000-0000-000000000001"


def test_wrong_types_and_misspelt_fields_are_reported_on_their_lines(
    type_errors: TypeErrors,
) -> None:
    assert sorted(type_errors(MISTAKES)) == [6, 7, 8, 9]


@pytest.mark.parametrize(
    "name",
    [
        "OutlitOptions",
        "ServerTrackOptions",
        "ServerIdentifyOptions",
        "StageOptions",
        "BillingOptions",
    ],
)
def test_the_option_types_can_be_read_at_run_time(name: str) -> None:
    # typing.get_type_hints, and what reads types at run time through it (pydantic, FastAPI).
    hints = typing.get_type_hints(getattr(outlit, name))
    assert hints
    if "user_id" in hints:
        assert hints["user_id"] == str | int | uuid.UUID | None


@pytest.mark.skipif(
    sys.version_info < (3, 12), reason="pydantic reads typing.TypedDict from Python 3.12 on"
)
def test_pydantic_validates_a_call_against_the_option_types() -> None:
    pydantic = pytest.importorskip("pydantic", reason="pydantic comes with FastAPI (dev extra)")
    adapter = pydantic.TypeAdapter(outlit.ServerTrackOptions)
    call = adapter.validate_python({"event_name": "signup", "user_id": 42, "email": None})
    assert call == {"event_name": "signup", "user_id": 42, "email": None}
