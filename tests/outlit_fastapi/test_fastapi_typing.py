"""What a type checker says of code that uses ``outlit_fastapi.Outlit`` outside requests: its
methods take what the client's take (None for "not given", int ids), and ``bind`` checks its
identity as the client's does."""

from __future__ import annotations

import textwrap
from collections.abc import Callable

PROGRAM = textwrap.dedent(
    """
    from outlit import MockTransport
    from outlit_fastapi import Outlit

    outlit = Outlit(public_key="pk_test", transport=MockTransport())

    def nightly(email: str | None) -> None:
        outlit.track(event_name="report_sent", email=email, customer_id=7)
        outlit.identify(email=email, user_id=42)
        outlit.bind({"customer_id": "c1"}).track(event_name="report_sent")
        outlit.bind(("customer_id", "c1"))
    """
)


def test_methods_outside_requests_type_check_as_the_clients(
    type_errors: Callable[[str], dict[int, str]],
) -> None:
    errors = type_errors(PROGRAM)
    assert set(errors) == {11}, errors  # only the tuple given to bind()
