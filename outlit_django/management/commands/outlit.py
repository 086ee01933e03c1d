"""``manage.py outlit check|send|flush``: see the configuration, prove delivery, empty the queue.

python manage.py outlit check              resolved settings (key masked) and connectivity
python manage.py outlit send               one test event; says whether it was delivered
python manage.py outlit flush              deliver what this process has queued
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from outlit import signals
from outlit._doctor import describe, diagnose

from ... import conf
from ...client import build_client, peek_client, resolved_options

TEST_EVENT_NAME = "outlit_test_event"
TEST_FINGERPRINT = "outlit-django-manage-py-send"


class Command(BaseCommand):
    help = (
        "Outlit: 'check' shows the resolved settings and whether the API host can be reached, "
        "'send' sends one test event and reports its delivery, 'flush' delivers what this "
        "process has queued."
    )
    # The command diagnoses broken configurations, so the checks must not stop it first.
    requires_system_checks = ()

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=("check", "send", "flush"))
        parser.add_argument(
            "--timeout",
            type=float,
            default=10.0,
            help="seconds to wait for delivery or a connection (default: %(default)s)",
        )
        parser.add_argument("--email", help="send: the test event's email")
        parser.add_argument("--user-id", help="send: the test event's user_id")
        parser.add_argument(
            "--event-name",
            default=TEST_EVENT_NAME,
            help="send: the event name (default: %(default)s)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if not 0 < options["timeout"] < math.inf:  # NaN fails both comparisons
            raise CommandError("--timeout must be a finite number of seconds > 0")
        if action == "check":
            self.check_configuration(options["timeout"])
        elif action == "send":
            self.send_test_event(options)
        else:
            self.flush_queue(options["timeout"])

    # -- check ----------------------------------------------------------------------------

    def check_configuration(self, timeout: float) -> None:
        try:
            outlit_settings = conf.get_settings()
            options = resolved_options(outlit_settings)
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Outlit settings (settings.{conf.SETTING_NAME} over the defaults):")
        described = describe(options)
        if outlit_settings.public_key_missing:
            described["public_key"] = "(none)"
        elif outlit_settings.public_key_from_environment:
            described["public_key"] += " (from the OUTLIT_PUBLIC_KEY environment variable)"
        else:
            described["public_key"] += f" (from settings.{conf.SETTING_NAME}['PUBLIC_KEY'])"
        # What people look for first, then the rest in the client's order.
        first = ("public_key", "api_host", "events_url", "enabled")
        shown = {name: described[name] for name in first}
        shown.update((name, value) for name, value in described.items() if name not in first)
        for name, value in shown.items():
            self.stdout.write(f"  {name:<26}{value}")
        for key in conf.INTEGRATION_KEYS:
            self.stdout.write(f"  {key.lower():<26}{outlit_settings.values[key]!r}")
        if outlit_settings.unknown_keys:
            self.stdout.write(
                self.style.WARNING(
                    "  ignored unknown keys: " + ", ".join(outlit_settings.unknown_keys)
                )
            )

        self.stdout.write("Checks:")
        failures = 0
        turned_off = outlit_settings.values["ENABLED"] is False
        if outlit_settings.public_key_missing and turned_off:
            # As the system checks: no key is needed while tracking is switched off.
            self._line(True, "public key", "none, and none needed while ENABLED is False")
            checks = []
        elif outlit_settings.public_key_missing:
            failures += 1
            self._line(False, "public key", "none: set PUBLIC_KEY or OUTLIT_PUBLIC_KEY")
            checks = diagnose(options, timeout)[1:]
        else:
            checks = diagnose(options, timeout)[:1] if turned_off else diagnose(options, timeout)
        if not options.enabled:
            self._line(True, "enabled", "False: calls are validated, nothing is sent")
        if turned_off:
            # Nothing is sent, so whether the host answers is not a failure of this setup.
            self._line(True, "connection", "not checked: ENABLED is False")
        for check in checks:
            failures += not check.ok
            self._line(check.ok, check.name, check.detail)
        if failures:
            raise CommandError(f"{failures} Outlit check(s) failed")

    def _line(self, ok: bool, name: str, detail: str) -> None:
        mark = self.style.SUCCESS("  ok   ") if ok else self.style.ERROR("  FAIL ")
        self.stdout.write(f"{mark}{name:<12}{detail}")

    # -- send -----------------------------------------------------------------------------

    def send_test_event(self, options: dict[str, Any]) -> None:
        # A client of its own, shut down without waiting when the command ends: an event not
        # delivered within --timeout is dropped then, instead of being retried for another
        # SHUTDOWN_TIMEOUT when the process exits. The process-wide client is left alone.
        try:
            client = build_client(lend_transport=True)
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        try:
            self._send_with(client, options)
        finally:
            client.shutdown(0)

    def _send_with(self, client: Any, options: dict[str, Any]) -> None:
        if not client.options.enabled:
            raise CommandError(
                "Outlit is disabled (ENABLED is False, or there is no public key): "
                "nothing can be sent. Run 'manage.py outlit check'."
            )
        identity: dict[str, Any] = {}
        if options["email"]:
            identity["email"] = options["email"]
        if options["user_id"]:
            identity["user_id"] = options["user_id"]
        if not identity:
            identity["fingerprint"] = TEST_FINGERPRINT

        # The worker reports each request's outcome through the core's signals.
        outcomes: dict[str, int] = {}  # each distinct outcome, with how many times it came
        lock = threading.Lock()

        def delivered(sender: Any, count: int, status: int, **extra: Any) -> None:
            with lock:
                outcome = f"HTTP {status}, {count} event(s) accepted"
                outcomes[outcome] = outcomes.get(outcome, 0) + 1

        def failed(sender: Any, count: int, status: int | None, error: Any, **extra: Any) -> None:
            with lock:
                outcome = f"failed: {'HTTP ' + str(status) if status else error}"
                outcomes[outcome] = outcomes.get(outcome, 0) + 1

        before = client.stats.delivered
        started = time.monotonic()
        with (
            signals.batch_delivered.connected_to(delivered, sender=client),
            signals.batch_failed.connected_to(failed, sender=client),
        ):
            try:
                client.track(
                    event_name=options["event_name"],
                    properties={"source": "manage.py outlit send"},
                    **identity,
                )
            except ValueError as exc:  # a blank --event-name or --email, say
                raise CommandError(str(exc)) from None
            result = client.flush(options["timeout"])
        elapsed = time.monotonic() - started
        target = describe(client.options)["events_url"]
        with lock:
            report = (
                "; ".join(f"{o} (x{n})" if n > 1 else o for o, n in outcomes.items()) or "no answer"
            )
        if result and client.stats.delivered > before:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Delivered {options['event_name']!r} to {target} in {elapsed:.2f} s "
                    f"({report})."
                )
            )
            return
        if client.stats.dropped_by_reason.get("invalid_key"):
            raise CommandError(
                f"The service refused the public key {describe(client.options)['public_key']} "
                f"({report}): the test event was not delivered to {target}. The key comes from "
                f"settings.{conf.SETTING_NAME}['PUBLIC_KEY'], else the OUTLIT_PUBLIC_KEY "
                "environment variable. Run 'manage.py outlit check'."
            )
        raise CommandError(
            f"The test event was not delivered to {target} within {options['timeout']} s "
            f"({report}). Run 'manage.py outlit check'."
        )

    # -- flush ----------------------------------------------------------------------------

    def flush_queue(self, timeout: float) -> None:
        client = peek_client()
        if client is None or client.queue_size == 0:
            self.stdout.write("Nothing is queued in this process.")
            return
        queued = client.queue_size
        result = client.flush(timeout)
        if not result:
            raise CommandError(
                f"Flush gave up after {timeout} s with {result.pending} of {queued} event(s) "
                "still queued."
            )
        self.stdout.write(self.style.SUCCESS(f"Flushed {queued} event(s)."))
