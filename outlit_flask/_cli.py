"""``flask outlit send | flush | check``: a test event, a flush, and the configuration check."""

from __future__ import annotations

import math
import os
import time
from typing import Any, cast

import click
from flask import current_app
from flask.cli import AppGroup

from outlit import Outlit as OutlitClient
from outlit._doctor import Check, check_connectivity, check_key, describe
from outlit._options import ENV_PUBLIC_KEY
from outlit.signals import batch_delivered, batch_failed, events_dropped

from ._config import FLASK_DEFAULTS

outlit_cli = AppGroup("outlit", help="Send a test event to Outlit, flush, or check the setup.")

#: Identity of the test event when none is given: an anonymous device, so that no real
#: contact's journey gets the test event.
TEST_FINGERPRINT = "outlit-flask-cli"


def _client() -> OutlitClient:
    # The group is only added to apps by init_app, so the client is there.
    return cast(OutlitClient, current_app.extensions["outlit"])


def _seconds(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if not 0 < value < math.inf:  # NaN fails both comparisons
        raise click.BadParameter(f"expected a finite number of seconds > 0, got {value}")
    return value


@outlit_cli.command("send")
@click.option("--event-name", default="outlit_test_event", show_default=True)
@click.option("--email", default=None, help="Send it as this user.")
@click.option("--user-id", default=None, help="Send it as this user id.")
@click.option(
    "--timeout",
    type=float,
    default=10.0,
    show_default=True,
    callback=_seconds,
    help="Seconds to wait.",
)
def send_command(event_name: str, email: str | None, user_id: str | None, timeout: float) -> None:
    """Send one test event and say whether Outlit accepted it."""
    client = _client()
    if not client.options.enabled:
        raise click.ClickException("OUTLIT_ENABLED is False for this app: nothing is sent")
    identity: dict[str, Any] = {"email": email, "user_id": user_id}
    if not (email or user_id):
        identity = {"fingerprint": TEST_FINGERPRINT}
    problems: list[str] = []

    def on_failed(sender: Any, status: int | None, error: str, **extra: Any) -> None:
        problems.append(f"HTTP {status}: {error}" if status is not None else str(error))

    def on_dropped(sender: Any, count: int, reason: str, messages: Any, **extra: Any) -> None:
        problems.append(f"dropped ({reason}): {messages}" if messages else f"dropped ({reason})")

    statuses: list[int] = []

    def on_delivered(sender: Any, status: int, **extra: Any) -> None:
        statuses.append(status)

    url = describe(client.options)["events_url"]
    delivered_before = client.stats.delivered
    started = time.monotonic()
    with (
        batch_failed.connected_to(on_failed, sender=client),
        events_dropped.connected_to(on_dropped, sender=client),
        batch_delivered.connected_to(on_delivered, sender=client),
    ):
        try:
            client.track(
                event_name=event_name, properties={"source": "flask outlit send"}, **identity
            )
        except ValueError as exc:  # a blank --event-name or --email, say
            raise click.UsageError(str(exc)) from None
        result = client.flush(timeout)
    elapsed = time.monotonic() - started
    if client.stats.delivered > delivered_before:
        status = statuses[-1] if statuses else 200
        click.echo(f"Delivered '{event_name}' to {url} (HTTP {status}, {elapsed:.2f} s).")
        return
    why = "; ".join(dict.fromkeys(problems)) or "no answer"
    if not result:
        # Do not let the exit-time flush wait for it again.
        client.shutdown(0)
        why = f"still not sent after {timeout:g} s ({why})"
    raise click.ClickException(f"'{event_name}' was not delivered to {url}: {why}")


@outlit_cli.command("flush")
@click.option(
    "--timeout",
    type=float,
    default=30.0,
    show_default=True,
    callback=_seconds,
    help="Seconds to wait.",
)
def flush_command(timeout: float) -> None:
    """Send what this process has queued (a running server flushes its own events)."""
    client = _client()
    queued = client.queue_size
    result = client.flush(timeout)
    if not result:
        raise click.ClickException(f"{result.pending} events still queued after {timeout:g} s")
    if queued:
        click.echo(f"Flushed {queued} events.")
    else:
        click.echo(
            "Nothing was queued in this process. Events tracked by a running server are sent "
            "by that server's own client."
        )


@outlit_cli.command("check")
@click.option(
    "--timeout",
    type=float,
    default=5.0,
    show_default=True,
    callback=_seconds,
    help="Seconds per network check.",
)
def check_command(timeout: float) -> None:
    """Show the resolved configuration (key masked) and test the connection to Outlit."""
    client = _client()
    app = current_app
    shown = describe(client.options)
    # Switched off without a key, the client runs with a stand-in key: not one to show.
    no_key = not client.options.enabled and not (
        app.config.get("OUTLIT_PUBLIC_KEY") or os.environ.get(ENV_PUBLIC_KEY)
    )
    if no_key:
        shown["public_key"] = "(none)"
        shown["events_url"] = "(none: no public key)"
    click.echo(f"Outlit configuration of app {app.name!r}:")
    for name, value in shown.items():
        label = "events url" if name == "events_url" else f"OUTLIT_{name.upper()}"
        click.echo(f"  {label:<32} {value}")
    for key in FLASK_DEFAULTS:
        click.echo(f"  {key:<32} {app.config.get(key)}")
    login = "found" if getattr(app, "login_manager", None) is not None else "not set up"
    click.echo(f"  {'Flask-Login LoginManager':<32} {login}")
    checks = [
        Check("public key", True, "none, and none needed while OUTLIT_ENABLED is False")
        if no_key
        else check_key(client.options.public_key)
    ]
    if client.options.enabled:
        checks += check_connectivity(client.options.api_host, timeout, client.options.transport)
    else:
        # Nothing is sent, so whether the host answers is not a failure of this setup.
        click.echo(
            "Note: OUTLIT_ENABLED is False, so calls are checked but nothing is sent, and the "
            "connection to the API host is not checked."
        )
    click.echo("Checks:")
    for check in checks:
        click.echo(f"  {'ok' if check.ok else 'FAIL':<5} {check.name}: {check.detail}")
    if not all(check.ok for check in checks):
        raise click.ClickException("some checks failed")
