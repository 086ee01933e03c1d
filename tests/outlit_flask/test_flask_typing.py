"""What a type checker says of code that uses the extension object: its ``track`` and
``identify`` take the client's keywords, so a misspelt one is caught before it runs."""

from __future__ import annotations

import textwrap
from collections.abc import Callable

PROGRAM = textwrap.dedent(
    """
    from flask import Flask

    from outlit import MockTransport
    from outlit_flask import Outlit

    outlit = Outlit()
    app = Flask(__name__)
    app.config.update(OUTLIT_PUBLIC_KEY="pk_test", OUTLIT_TRANSPORT=MockTransport())
    outlit.init_app(app)

    with app.app_context():
        outlit.track(event_name="report_exported", email="jane@acme.com", user_id=42)
        outlit.identify(email="jane@acme.com", user_id=None, traits={"plan": "pro"})
        outlit.track(evnt_name="report_exported", email="jane@acme.com")
        outlit.identify(emial="jane@acme.com")
    """
)


def test_the_extensions_tracking_methods_check_their_keywords(
    type_errors: Callable[[str], dict[int, str]],
) -> None:
    errors = type_errors(PROGRAM)
    assert set(errors) == {15, 16}, errors  # the two misspelt calls, nothing else
