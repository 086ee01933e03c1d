"""Client options: defaults, environment fallback and validation, resolved once at construction."""

from __future__ import annotations

import os

from ._exceptions import OptionError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ._retry import RetryPolicy
    from ._transport import Transport

DEFAULT_API_HOST = "https://app.outlit.ai"
DEFAULT_FLUSH_INTERVAL = 10.0
DEFAULT_MAX_BATCH_SIZE = 100
DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_QUEUE_SIZE = 10_000
DEFAULT_SHUTDOWN_TIMEOUT = 5.0
# The service documents 100 requests per second per public key.
DEFAULT_MAX_REQUESTS_PER_SECOND = 100.0

#: Documented service limits for one request.
MAX_EVENTS_PER_REQUEST = 100
MAX_BODY_BYTES = 1_000_000

ENV_PUBLIC_KEY = "OUTLIT_PUBLIC_KEY"
ENV_API_HOST = "OUTLIT_API_HOST"


class Options:
    """The resolved, validated configuration of one :class:`~outlit.Outlit` client."""

    __slots__ = (
        "api_host",
        "enabled",
        "flush_interval",
        "max_batch_size",
        "max_queue_size",
        "max_requests_per_second",
        "public_key",
        "retry",
        "shutdown_timeout",
        "timeout",
        "transport",
    )

    def __init__(
        self,
        *,
        public_key: str,
        api_host: str,
        flush_interval: float,
        max_batch_size: int,
        timeout: float,
        max_queue_size: int,
        enabled: bool,
        shutdown_timeout: float,
        max_requests_per_second: float,
        retry: RetryPolicy,
        transport: Transport | None,
    ) -> None:
        self.public_key = public_key
        self.api_host = api_host
        self.flush_interval = flush_interval
        self.max_batch_size = max_batch_size
        self.timeout = timeout
        self.max_queue_size = max_queue_size
        self.enabled = enabled
        self.shutdown_timeout = shutdown_timeout
        self.max_requests_per_second = max_requests_per_second
        self.retry = retry
        self.transport = transport

    @property
    def events_url(self) -> str:
        return f"{self.api_host}/api/i/v1/{self.public_key}/events"

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __repr__(self) -> str:
        shown = self.as_dict()
        shown["public_key"] = mask_key(self.public_key)
        return "Options(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"


def looks_like_placeholder(public_key: str) -> bool:
    """Whether a key has characters no public key has and documentation placeholders do
    (``pk_...``, ``pk_<your key>``, ``pk_…``). The checks and ``doctor`` report it; the client
    accepts it (the service answers 401)."""
    return any(c in _PLACEHOLDER_CHARACTERS for c in public_key[3:])


_PLACEHOLDER_CHARACTERS = frozenset(".<>{}[]…* ")


def mask_key(public_key: str) -> str:
    """``pk_abcd…`` : enough to recognise a key in logs without printing all of it."""
    return public_key[:7] + "…" if len(public_key) > 7 else public_key


# The longest duration an option takes: ten years. Far beyond any use, and well within what
# threads and sockets can wait (threading.TIMEOUT_MAX is about 292 years; past it a wait
# raises OverflowError, which would stop the worker or reach the app).
MAX_SECONDS = 10 * 365 * 86400


def _number(
    name: str,
    value: Any,
    *,
    minimum: float,
    allow_equal: bool,
    unit: str = "seconds",
    maximum: float | None = None,
) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise OptionError(f"{name} must be a number of {unit}, got {value!r}")
    ok = value >= minimum if allow_equal else value > minimum
    if not ok or value != value or value == float("inf"):
        bound = ">=" if allow_equal else ">"
        raise OptionError(f"{name} must be a finite number {bound} {minimum:g}, got {value!r}")
    if maximum is not None and value > maximum:  # compared before float(): 10**400 has none
        raise OptionError(
            f"{name} must be at most {maximum:,.0f} {unit} (ten years), got {value!r}"
        )
    try:
        return float(value)
    except OverflowError:
        raise OptionError(f"{name} is too large a number, got {value!r}") from None


def _integer(name: str, value: Any, *, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise OptionError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        span = f"between {low} and {high}" if high is not None else f">= {low}"
        raise OptionError(f"{name} must be {span}, got {value}")
    return value


def normalize_api_host(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise OptionError(f"api_host must be an http(s) URL such as {DEFAULT_API_HOST!r}")
    from urllib.parse import urlsplit

    from ._log import without_credentials

    host = value.strip().rstrip("/")
    shown = f", got {without_credentials(value, value)!r}"  # credentials are never printed
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in host):
        # urlsplit drops tabs and line breaks from what it parses, not from this text, which
        # goes into the request line as it is.
        raise OptionError(f"api_host must not contain spaces or control characters{shown}")
    try:
        parts = urlsplit(host)
        parts.port  # noqa: B018 - read for its check: a port that is not a number raises
    except ValueError as exc:  # "http://[::1" (Invalid IPv6 URL), "http://host:abc"
        raise OptionError(
            f"api_host is not a usable URL ({without_credentials(exc, value)}){shown}"
        ) from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise OptionError(f"api_host must be an http(s) URL such as {DEFAULT_API_HOST!r}{shown}")
    if not parts.hostname:
        raise OptionError(f"api_host has no usable host name{shown}")
    if parts.query or parts.fragment:
        raise OptionError(f"api_host must not carry a query string or fragment{shown}")
    if "@" in parts.netloc:
        # The default transport would not send them, and they would show in logs and reports.
        raise OptionError(
            "api_host must not carry credentials (user:password@host): the ingest API needs "
            "none; for a gateway that does, pass transport=HttpxTransport(auth=...)"
        )
    return host


def resolve_options(
    *,
    public_key: str | None,
    api_host: str | None,
    flush_interval: float,
    max_batch_size: int,
    timeout: float,
    max_queue_size: int,
    enabled: bool,
    shutdown_timeout: float,
    max_requests_per_second: float,
    retry: RetryPolicy | None,
    transport: Transport | None,
) -> Options:
    """Validate the constructor's arguments, filling the public key and host from the environment."""
    if public_key is None:
        public_key = os.environ.get(ENV_PUBLIC_KEY) or None
    if api_host is None:
        api_host = os.environ.get(ENV_API_HOST) or DEFAULT_API_HOST
    if not isinstance(enabled, bool):
        raise OptionError(f"enabled must be True or False, got {enabled!r}")
    if public_key is None:
        if enabled:
            raise OptionError(
                f"public_key is required: pass Outlit(public_key='pk_...') or set {ENV_PUBLIC_KEY}"
            )
        public_key = "pk_disabled"
    if not isinstance(public_key, str) or not public_key.strip():
        raise OptionError(f"public_key must be a non-empty string, got {public_key!r}")
    public_key = public_key.strip()
    if not public_key.startswith("pk_"):
        raise OptionError("public_key must start with 'pk_' (find it in Outlit's settings)")
    if "/" in public_key or "?" in public_key or "#" in public_key:
        raise OptionError("public_key must not contain '/', '?' or '#'")
    if public_key == "pk_":
        raise OptionError("public_key is only 'pk_': copy the whole key from Outlit's settings")
    if not (public_key.isascii() and public_key.isprintable()) or " " in public_key:
        # It goes into the request's path as it is: the request would be malformed.
        raise OptionError(
            "public_key must not contain spaces or non-ASCII characters: copy it again from "
            "Outlit's settings"
        )
    from ._retry import RetryPolicy

    if retry is None:
        retry = RetryPolicy()
    elif not isinstance(retry, RetryPolicy):
        raise OptionError(f"retry must be an outlit.RetryPolicy, got {retry!r}")
    if transport is not None and not (
        callable(getattr(transport, "send", None)) and callable(getattr(transport, "close", None))
    ):
        # Else every send would fail as a "network error", retried for as long as it runs.
        raise OptionError(
            "transport must be an object with send(request) and close(), such as "
            f"outlit.HTTPTransport(...) or outlit.HttpxTransport(...), got {transport!r}"
        )
    return Options(
        public_key=public_key,
        api_host=normalize_api_host(api_host),
        flush_interval=_number(
            "flush_interval", flush_interval, minimum=0, allow_equal=False, maximum=MAX_SECONDS
        ),
        max_batch_size=_integer(
            "max_batch_size", max_batch_size, low=1, high=MAX_EVENTS_PER_REQUEST
        ),
        timeout=_number("timeout", timeout, minimum=0, allow_equal=False, maximum=MAX_SECONDS),
        max_queue_size=_integer("max_queue_size", max_queue_size, low=1),
        enabled=enabled,
        shutdown_timeout=_number(
            "shutdown_timeout", shutdown_timeout, minimum=0, allow_equal=True, maximum=MAX_SECONDS
        ),
        max_requests_per_second=_number(
            "max_requests_per_second",
            max_requests_per_second,
            minimum=0,
            allow_equal=False,
            unit="requests per second",
        ),
        retry=retry,
        transport=transport,
    )


#: The constructor's keyword arguments that a framework's configuration may set.
OPTION_NAMES = (
    "public_key",
    "api_host",
    "flush_interval",
    "max_batch_size",
    "timeout",
    "max_queue_size",
    "enabled",
    "shutdown_timeout",
    "max_requests_per_second",
    "retry",
    "transport",
)


def options_from_config(config: Any, prefix: str = "") -> tuple[dict[str, Any], list[str]]:
    """Client keyword arguments from upper-case configuration keys, plus the unknown keys.

    ``options_from_config({"PUBLIC_KEY": "pk_1", "TIMOUT": 3})`` gives
    ``({"public_key": "pk_1"}, ["TIMOUT"])``; with ``prefix="OUTLIT_"`` only keys starting with
    it are read (Flask's ``app.config``). The adapters use it so that every client option has
    a configuration key of the same name.
    """
    kwargs: dict[str, Any] = {}
    unknown: list[str] = []
    for key, value in config.items():
        if not isinstance(key, str) or not key.startswith(prefix):
            continue
        name = key[len(prefix) :]
        # Upper case only, as documented and as the adapters' checks read them: "timeout" is
        # as unknown to them as a typo, and must not be used behind their back.
        if name.isupper() and name.lower() in OPTION_NAMES:
            kwargs[name.lower()] = value
        else:
            unknown.append(key)
    return kwargs, unknown
