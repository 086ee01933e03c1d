"""Where failed sends are retried: the retry policy, backoff with full jitter, and rate limits."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

from ._exceptions import OptionError

#: Statuses below 500 after which the same batch is sent again later (every 5xx is too).
TRANSIENT_STATUSES = frozenset({408, 425, 429})


def is_transient(status: int) -> bool:
    """Worth sending the same batch again later: 408, 425, 429, every 5xx (a proxy's 520s
    included), and 3xx. The service answers POSTs itself and never redirects them: a redirect
    comes from a wrong ``api_host`` (http:// to https://, a moved host), and dropping the batch
    would lose events over a setting the log line (with its ``Location``) lets users fix."""
    return status in TRANSIENT_STATUSES or status >= 500 or 300 <= status < 400


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures (network errors, timeouts, 408, 429, 5xx) are retried.

    The n-th consecutive failure waits a random time in ``[0, min(max_backoff,
    initial_backoff * 2**n)]`` (exponential backoff with full jitter). A ``Retry-After`` or
    ``X-RateLimit-Reset`` from the service replaces that wait, capped by ``max_retry_after``.
    There is no attempt limit: events wait in the bounded queue until the service is back, and
    only the queue cap or the exit-time deadline ever gives up on them.
    """

    initial_backoff: float = 0.5
    max_backoff: float = 30.0
    max_retry_after: float = 300.0

    def __post_init__(self) -> None:
        for name in ("initial_backoff", "max_backoff", "max_retry_after"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise OptionError(
                    f"RetryPolicy.{name} must be a number of seconds > 0, got {value!r}"
                )
        if self.max_backoff < self.initial_backoff:
            raise OptionError("RetryPolicy.max_backoff must be >= RetryPolicy.initial_backoff")

    def backoff(self, failures: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after ``failures`` consecutive failures (``failures >= 1``)."""
        ceiling = min(self.max_backoff, self.initial_backoff * (2 ** min(failures - 1, 30)))
        return (rng or random).uniform(0, ceiling)


def server_delay(status: int, headers: Mapping[str, str], *, cap: float) -> float | None:
    """Seconds the service asked us to wait, from Retry-After or the rate-limit headers."""
    retry_after = headers.get("retry-after")
    if retry_after is not None:
        delay = _parse_retry_after(retry_after.strip())
        if delay is not None:
            return min(max(delay, 0.0), cap)
    if status == 429 or headers.get("x-ratelimit-remaining", "").strip() == "0":
        reset = headers.get("x-ratelimit-reset")
        if reset is not None:
            try:
                delay = float(reset) - time.time()
            except ValueError:
                return None
            if math.isfinite(delay):
                return min(max(delay, 0.0), cap)
    return None


def _parse_retry_after(value: str) -> float | None:
    """Seconds from a Retry-After value (a number or an HTTP date); None when unreadable."""
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) else None  # "nan" and "inf" parse as floats
    import email.utils  # only for the rare HTTP-date form; keeps `import outlit` light

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when.timestamp() - time.time()
