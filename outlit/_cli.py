"""The ``outlit`` command: a local collector, every SDK call from a shell, a setup check, a demo.

    outlit dev                                  local ingest endpoint + live viewer
    outlit send --event-name signup --email a@b.co --property plan=pro
    outlit identify --email a@b.co --trait name="Jane Doe" --customer-trait seats=50
    outlit user activate|engaged|inactive --email a@b.co
    outlit customer trialing|paid|churned --customer-domain acme.com
    outlit doctor                               configuration, key form, connectivity
    outlit demo                                 the Node SDK's scenarios, end to end

Exit codes: 0 success, 1 failed (refused, check failed, demo mismatch), 2 usage error,
3 not delivered within ``--timeout`` (network down, service unavailable).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import importlib
import json
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, TextIO

from outlit._exceptions import InvalidEventError, OptionError
from outlit._version import __version__

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNDELIVERED = 3

#: How long ``send`` and friends wait for the service's answer by default (seconds).
DEFAULT_SEND_TIMEOUT = 10.0
#: How long each ``doctor`` network check may take (seconds).
DEFAULT_CHECK_TIMEOUT = 5.0

_EPILOG = (
    "exit codes: 0 success, 1 failed (refused, check failed, demo mismatch), "
    "2 usage error, 3 not delivered within --timeout"
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``outlit`` command; returns the exit code (argparse's exits included)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        if args_list and args_list[0] == "dev":
            return _dev(args_list[1:])
        parser = build_parser()
        args = parser.parse_args(args_list)
        handler: Callable[[argparse.Namespace], int] = args.handler
        return handler(args)
    except SystemExit as exc:
        # argparse exits for --help, --version and usage errors; callers of main() get a code.
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_USAGE)
    except KeyboardInterrupt:
        return 130


# -- parser -------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="outlit",
        description="Outlit's server-side SDK from the command line.",
        epilog=_EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"outlit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    # `outlit dev` is handed to the collector's own parser before this one runs (see main());
    # it is listed here so that `outlit --help` shows it.
    commands.add_parser(
        "dev",
        help="run a local Outlit-compatible endpoint with a live event viewer",
        add_help=False,
    )

    connection = _connection_options()
    output = _output_options()
    person = _person_options()
    account = _account_options()
    properties = _property_options()

    send = commands.add_parser(
        "send",
        parents=[person, account, properties, connection, output],
        help="track one custom event (outlit.track) and wait for the answer",
        description="Track one custom event and wait until the service answers. "
        "Needs one of --email, --user-id, --fingerprint, --customer-id, --customer-domain.",
        epilog=_EPILOG,
    )
    send.add_argument("--event-name", "-e", required=True, help="e.g. report_exported")
    send.set_defaults(handler=_send, call="track", parser=send)

    identify = commands.add_parser(
        "identify",
        parents=[person, account, connection, output],
        help="update user and customer traits (outlit.identify)",
        description="Update a user's traits, and optionally their customer's. "
        "Needs --email or --user-id.",
        epilog=_EPILOG,
    )
    identify.add_argument(
        "--trait", dest="traits", action="append", type=_key_value, metavar="KEY=VALUE"
    )
    identify.add_argument(
        "--customer-trait",
        dest="customer_traits",
        action="append",
        type=_key_value,
        metavar="KEY=VALUE",
    )
    identify.add_argument("--timestamp", type=_timestamp, help=_TIMESTAMP_HELP)
    identify.set_defaults(handler=_send, call="identify", parser=identify)

    user = commands.add_parser(
        "user",
        help="contact stages: activate, engaged, inactive (outlit.user.*)",
        description="Move a contact to a lifecycle stage.",
    )
    stages = user.add_subparsers(dest="action", metavar="STAGE", required=True)
    for action, what in (
        ("activate", "mark a contact activated"),
        ("engaged", "mark a contact engaged"),
        ("inactive", "mark a contact inactive"),
    ):
        sub = stages.add_parser(
            action,
            parents=[person, properties, connection, output],
            help=what,
            description=f"{what.capitalize()}. Needs one of --email, --user-id, --fingerprint.",
            epilog=_EPILOG,
        )
        sub.set_defaults(handler=_send, call=f"user.{action}", parser=sub)

    customer = commands.add_parser(
        "customer",
        help="account billing: trialing, paid, churned (outlit.customer.*)",
        description="Set an account's billing status.",
    )
    statuses = customer.add_subparsers(dest="action", metavar="STATUS", required=True)
    for action in ("trialing", "paid", "churned"):
        what = f"mark an account {action}"
        sub = statuses.add_parser(
            action,
            parents=[account, properties, connection, output],
            help=what,
            description=f"{what.capitalize()}. Needs --customer-id or --customer-domain.",
            epilog=_EPILOG,
        )
        sub.add_argument("--stripe-customer-id", help="Stripe's cus_... id")
        sub.set_defaults(handler=_send, call=f"customer.{action}", parser=sub)

    doctor = commands.add_parser(
        "doctor",
        parents=[output],
        help="show the configuration and check the key and the connection",
        description="Show the configuration a client would use (key masked), check the key's "
        "form, resolve the API host and open a connection to it. Nothing is sent.",
        epilog=_EPILOG,
    )
    doctor.add_argument("--public-key", help="default: $OUTLIT_PUBLIC_KEY")
    doctor.add_argument("--api-host", help="default: $OUTLIT_API_HOST, else the Outlit service")
    doctor.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_CHECK_TIMEOUT,
        help="seconds each network check may take (default: %(default)s)",
    )
    doctor.set_defaults(handler=_doctor, parser=doctor)

    from outlit._demo import SCENARIOS

    names = [scenario.name for scenario in SCENARIOS]
    demo = commands.add_parser(
        "demo",
        parents=[output],
        help="play the Node SDK's scenarios against an in-process collector",
        description="Start a local collector on a free 127.0.0.1 port, play the Node SDK "
        "documentation's scenarios through this SDK (and through each framework adapter that is "
        "installed), then show every event sent beside what the collector stored. Exits 0 only "
        "when every event arrived exactly once.",
        epilog=_EPILOG,
    )
    demo.add_argument(
        "--keep-open",
        action="store_true",
        help="keep the collector and its viewer running after the report, until Ctrl-C",
    )
    demo.add_argument(
        "--only",
        action="append",
        choices=names,
        metavar="SCENARIO",
        help=f"play only these scenarios (repeatable): {', '.join(names)}",
    )
    demo.set_defaults(handler=_demo, parser=demo)
    return parser


def _connection_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("connection")
    group.add_argument("--public-key", help="default: $OUTLIT_PUBLIC_KEY")
    group.add_argument("--api-host", help="default: $OUTLIT_API_HOST, else the Outlit service")
    group.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_SEND_TIMEOUT,
        help="seconds to wait for delivery, retries included (default: %(default)s)",
    )
    group.add_argument(
        "-v", "--verbose", action="store_true", help="show the client's log on stderr"
    )
    return parent


def _output_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--json", action="store_true", help="print a JSON report on stdout")
    return parent


def _person_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("user identity")
    group.add_argument("--email")
    group.add_argument("--user-id", help="your system's user id")
    group.add_argument("--fingerprint", help="a device id, for desktop or mobile apps")
    return parent


def _account_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("account identity")
    group.add_argument("--customer-id", help="your system's account/workspace id")
    group.add_argument("--customer-domain", help="the account's public domain, e.g. acme.com")
    return parent


_TIMESTAMP_HELP = "Unix milliseconds, or an ISO 8601 time with its UTC offset (default: now)"


def _property_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--property",
        "-p",
        dest="properties",
        action="append",
        type=_key_value,
        metavar="KEY=VALUE",
        help="repeatable; VALUE is read as JSON when it is a number, true, false or null "
        "(mrr=99, ok=true), else as text; quote it to force text: id='\"42\"'",
    )
    parent.add_argument("--timestamp", type=_timestamp, help=_TIMESTAMP_HELP)
    return parent


# -- argument types -----------------------------------------------------------------


def _key_value(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, parse_value(raw)


def parse_value(raw: str) -> Any:
    """``99`` -> 99, ``true`` -> True, ``null`` -> None, ``"42"`` -> "42"; anything else as text.

    Only JSON scalars are read as JSON: ``[1,2]`` stays the text ``"[1,2]"``, as the service
    documents string, number, boolean and null property values.
    """
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    if isinstance(value, float) and not math.isfinite(value):
        return raw  # NaN / Infinity are not JSON the service accepts; keep what was typed
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return raw


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _timestamp(text: str) -> int | _dt.datetime:
    if text.strip().isdigit():
        return int(text)
    try:
        when = _dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected Unix milliseconds or an ISO 8601 time, got {text!r}"
        ) from None
    if when.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} has no UTC offset; add one, e.g. {text}+00:00 or {text}Z"
        )
    return when


# -- outlit dev ---------------------------------------------------------------------


def _dev(argv: list[str]) -> int:
    from outlit._collector.server import main as collector_main

    # The collector's parser lets --memory silently win over --db; saying so beats
    # storing somewhere the user did not ask for.
    if "--memory" in argv and any(a == "--db" or a.startswith("--db=") for a in argv):
        print("usage: outlit dev [--db PATH | --memory] ...", file=sys.stderr)
        print("outlit dev: error: --db and --memory cannot be used together", file=sys.stderr)
        return EXIT_USAGE
    return collector_main(argv)


# -- send, identify, user.*, customer.* ---------------------------------------------


@dataclass
class Delivery:
    """What became of the events one command sent: filled from the client's signals."""

    sent: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)


class _WatchingTransport:
    """Passes requests to the real transport, keeping each wire event (once) and each answer."""

    def __init__(self, inner: Any, delivery: Delivery) -> None:
        self._inner = inner
        self._delivery = delivery
        self._seen: set[Any] = set()

    def send(self, request: Any) -> Any:
        for event in request.json()["events"]:
            if event.get("uuid") not in self._seen:  # a retry resends the same uuid
                self._seen.add(event.get("uuid"))
                self._delivery.sent.append(event)
        response = self._inner.send(request)
        self._delivery.statuses.append(response.status_code)
        return response

    def close(self) -> None:
        self._inner.close()


def _call_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    names = (
        "event_name",
        "email",
        "user_id",
        "fingerprint",
        "customer_id",
        "customer_domain",
        "stripe_customer_id",
        "timestamp",
    )
    kwargs = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    for name in ("properties", "traits", "customer_traits"):
        pairs = getattr(args, name, None)
        if pairs:
            kwargs[name] = dict(pairs)
    return kwargs


def _send(args: argparse.Namespace) -> int:
    from outlit import Outlit
    from outlit._options import mask_key
    from outlit._transport import HTTPTransport
    from outlit.testing import describe_event

    # The module the worker emits on is the one in sys.modules (see outlit.testing).
    signals = importlib.import_module("outlit.signals")
    parser: argparse.ArgumentParser = args.parser
    delivery = Delivery()
    try:
        client = Outlit(
            public_key=args.public_key,
            api_host=args.api_host,
            # The whole budget for one request too: a service that answers within it has the
            # event, and a shorter cap would call it undelivered and send it again.
            timeout=args.timeout,
            transport=_WatchingTransport(HTTPTransport(), delivery),
        )
    except OptionError as exc:
        parser.error(f"{exc}; on the command line: --public-key / --api-host")

    def on_failed(sender: Any, status: int | None = None, error: str = "", **extra: Any) -> None:
        what = "network error" if status is None else f"HTTP {status}"
        head, sep, tail = error.partition(": ")
        line = f"{what}: {head if sep and head == tail else error}"  # "X: X" says X twice
        if status in (401, 403, 404):
            line = f"the service refused public key {mask_key(client.options.public_key)} ({line})"
        (delivery.failures if extra.get("retry_in") is not None else delivery.refusals).append(line)

    def on_dropped(sender: Any, reason: str = "", messages: Any = (), **extra: Any) -> None:
        # A refused key or request was already reported by on_failed; a 207 only shows here.
        if reason in ("invalid_key", "shutdown") or (reason == "rejected" and delivery.refusals):
            return
        detail = "; ".join(str(m) for m in messages) if messages else reason
        delivery.refusals.append(f"{reason.replace('_', ' ')}: {detail}")

    call = args.call
    method: Any = client
    for part in call.split("."):
        method = getattr(method, part)
    started = time.monotonic()
    with (
        _client_logging(args.verbose),
        signals.batch_failed.connected_to(on_failed, sender=client),
        signals.events_dropped.connected_to(on_dropped, sender=client),
    ):
        try:
            method(**_call_kwargs(args))
        except InvalidEventError as exc:
            client.shutdown(timeout=0)
            parser.error(str(exc))
        client.flush(args.timeout)
        stats = client.stats
        # Give up on anything still queued now: the command's time is over.
        client.shutdown(timeout=0)
    elapsed_ms = round((time.monotonic() - started) * 1000)

    event = delivery.sent[0] if delivery.sent else None
    if stats.delivered:
        outcome, code, reason = "delivered", EXIT_OK, None
    elif stats.dropped or delivery.refusals:
        outcome, code = "refused", EXIT_FAILED
        reason = "; ".join(delivery.refusals) or f"dropped ({', '.join(stats.dropped_by_reason)})"
    else:
        outcome, code = "not_delivered", EXIT_UNDELIVERED
        last = delivery.failures[-1] if delivery.failures else "no answer"
        reason = f"{last}; gave up after {args.timeout:g} s (--timeout)"

    if args.json:
        _print_json(
            {
                "ok": code == EXIT_OK,
                "outcome": outcome,
                "call": call,
                "reason": reason,
                "status": delivery.statuses[-1] if delivery.statuses else None,
                "event": event,
                "api_host": client.options.api_host,
                "public_key": mask_key(client.options.public_key),
                "elapsed_ms": elapsed_ms,
            }
        )
    elif code == EXIT_OK and event is not None:
        print(
            f"delivered {describe_event(event)} to {client.options.api_host} "
            f"(HTTP {delivery.statuses[-1]}, uuid {event.get('uuid')}, {elapsed_ms} ms)"
        )
    if code != EXIT_OK:
        label = "refused" if outcome == "refused" else "not delivered"
        print(f"{parser.prog}: {label}: {reason}", file=sys.stderr)
    return code


@contextlib.contextmanager
def _client_logging(verbose: bool) -> Iterator[None]:
    """Route the ``outlit`` logger to stderr with ``-v``, else silence it: the command reports
    the outcome itself, and the log would say it twice."""
    log = logging.getLogger("outlit")
    handler: logging.Handler = (
        logging.StreamHandler(sys.stderr) if verbose else logging.NullHandler()
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    saved = (log.level, log.propagate)
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if verbose else logging.CRITICAL)
    log.propagate = False
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(saved[0])
        log.propagate = saved[1]


# -- doctor -------------------------------------------------------------------------


def _doctor(args: argparse.Namespace) -> int:
    from outlit._doctor import Check, check_connectivity, describe, diagnose
    from outlit._options import (
        DEFAULT_API_HOST,
        DEFAULT_FLUSH_INTERVAL,
        DEFAULT_MAX_BATCH_SIZE,
        DEFAULT_MAX_QUEUE_SIZE,
        DEFAULT_MAX_REQUESTS_PER_SECOND,
        DEFAULT_SHUTDOWN_TIMEOUT,
        DEFAULT_TIMEOUT,
        ENV_API_HOST,
        ENV_PUBLIC_KEY,
        mask_key,
        normalize_api_host,
        resolve_options,
    )

    from ._log import without_credentials

    sources = {
        "public_key": _source("--public-key", args.public_key, ENV_PUBLIC_KEY),
        "api_host": _source("--api-host", args.api_host, ENV_API_HOST),
    }
    config: dict[str, Any] | None = None
    checks: list[Check]
    try:
        options = resolve_options(
            public_key=args.public_key,
            api_host=args.api_host,
            flush_interval=DEFAULT_FLUSH_INTERVAL,
            max_batch_size=DEFAULT_MAX_BATCH_SIZE,
            timeout=DEFAULT_TIMEOUT,
            max_queue_size=DEFAULT_MAX_QUEUE_SIZE,
            enabled=True,
            shutdown_timeout=DEFAULT_SHUTDOWN_TIMEOUT,
            max_requests_per_second=DEFAULT_MAX_REQUESTS_PER_SECOND,
            retry=None,
            transport=None,
        )
    except OptionError as exc:
        # Still check what can be checked: a missing key should not hide an unreachable host.
        checks = [Check("configuration", False, str(exc))]
        raw_host = args.api_host or os.environ.get(ENV_API_HOST) or DEFAULT_API_HOST
        try:
            checks.extend(check_connectivity(normalize_api_host(raw_host), args.timeout))
        except OptionError as host_exc:
            checks.append(Check("api host", False, str(host_exc)))
        raw_key = args.public_key or os.environ.get(ENV_PUBLIC_KEY)
        shown_host = without_credentials(raw_host, raw_host)  # perhaps refused for a password
        config = {"public_key": mask_key(raw_key) if raw_key else None, "api_host": shown_host}
    else:
        described = describe(options)
        first = ("public_key", "api_host", "events_url")
        config = {name: described[name] for name in first}
        config.update((name, value) for name, value in described.items() if name not in first)
        checks = diagnose(options, args.timeout)
    failed = [check for check in checks if not check.ok]
    environment = _environment()

    if args.json:
        _print_json(
            {
                "ok": not failed,
                "config": config,
                "sources": sources,
                "checks": [
                    {"name": check.name, "ok": check.ok, "detail": check.detail} for check in checks
                ],
                "environment": environment,
            }
        )
        return EXIT_FAILED if failed else EXIT_OK

    out = sys.stdout
    out.write("Outlit doctor\n\n")
    out.write("  " + ", ".join(f"{k} {v}" for k, v in environment.items()) + "\n\n")
    out.write("Configuration\n")
    width = max(len(name) for name in config)
    for name, value in config.items():
        shown = "(not set)" if value is None else str(value)
        where = f"   from {sources[name]}" if name in sources else ""
        out.write(f"  {name:<{width}}  {shown}{where}\n")
    out.write("\nChecks\n")
    width = max(len(check.name) for check in checks)
    for check in checks:
        out.write(f"  {'ok  ' if check.ok else 'FAIL'}  {check.name:<{width}}  {check.detail}\n")
    out.write("\n")
    if failed:
        noun = "problem" if len(failed) == 1 else "problems"
        out.write(f"{len(failed)} {noun} to fix: " + "; ".join(c.name for c in failed) + ".\n")
        return EXIT_FAILED
    out.write(
        "Everything checks out. To see an event arrive end to end, run\n"
        "  outlit send --event-name outlit_test --email you@example.com\n"
    )
    return EXIT_OK


def _source(flag: str, value: str | None, env: str) -> str:
    if value is not None:
        return flag
    if os.environ.get(env):
        return env
    return "default" if env.endswith("API_HOST") else "nowhere"


def _environment() -> dict[str, str]:
    import platform
    from importlib import metadata

    from outlit._compiled import describe
    from outlit._encoding import ENCODER_NAME

    try:
        httpx_version = metadata.version("httpx")
    except metadata.PackageNotFoundError:
        httpx_version = "not installed"
    return {
        "outlit": __version__,
        "python": platform.python_version(),
        "httpx": httpx_version,
        "json encoder": ENCODER_NAME,
        "fast paths": describe(),
    }


# -- demo ---------------------------------------------------------------------------


def _demo(args: argparse.Namespace) -> int:
    from outlit._demo import DemoReport, format_report, run_demo

    stream = sys.stdout

    def show(report: DemoReport, viewer_open: bool) -> None:
        if args.json:
            _print_json(report.as_dict())
        else:
            stream.write(format_report(report, viewer_open=viewer_open))
        stream.flush()

    def keep_open(url: str, report: DemoReport) -> None:
        show(report, viewer_open=True)  # the report first: the wait may last a while
        print(
            f"\nThe collector is still running: {url}/  (Ctrl-C to stop)",
            file=sys.stderr if args.json else stream,
            flush=True,
        )
        _wait_for_interrupt()

    with _client_logging(False):
        report = run_demo(
            only=args.only or (),
            before_close=keep_open if args.keep_open else None,
            progress=None if args.json else _progress(stream),
        )
    if not args.keep_open:
        show(report, viewer_open=False)
    return EXIT_OK if report.ok else EXIT_FAILED


def _progress(stream: TextIO) -> Callable[[str], None]:
    def show(line: str) -> None:
        stream.write(line + "\n")
        stream.flush()

    return show


def _wait_for_interrupt() -> None:
    """Block until Ctrl-C or SIGTERM (both end the wait the same way)."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        while not stop.wait(0.2):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# -- output -------------------------------------------------------------------------


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str, ensure_ascii=False))
