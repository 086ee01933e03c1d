"""The background worker: takes batches from the queue, sends them and acts on the answer.

One daemon thread per client, started on first use. It wakes when a batch fills, when the flush
interval passes, when ``flush()`` asks, or when a retry is due. What each answer means:

* 2xx: delivered. 207: delivered except the indexes the service lists (dropped, logged).
* 400/413/422: split the batch in halves until the rejected events are isolated; drop only those.
* 401/403/404: the public key is wrong; say so once, stop sending, keep memory bounded.
* network errors, timeouts, 408/425/429/5xx: put the batch back at the front, wait (backoff with
  full jitter, or what Retry-After / X-RateLimit-Reset say) and send the same bytes again.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import types
import weakref
from dataclasses import dataclass, field
from typing import Any

from ._compiled import speedups
from ._encoding import encode_body, encode_event
from ._events import custom_event, stamp_event
from ._ids import new_uuids
from ._log import get_logger
from ._options import MAX_BODY_BYTES, Options, mask_key
from ._queue import BODY_OVERHEAD, EventQueue, FlushMarker, build_body
from ._retry import is_transient, server_delay
from ._transport import Request, Response, Transport, TransportError

logger = get_logger("outlit")

_monotonic = time.monotonic

#: Reasons under which events are counted as dropped.
DROP_QUEUE_FULL = "queue_full"
DROP_REJECTED = "rejected"
DROP_TOO_LARGE = "too_large"
DROP_INVALID_KEY = "invalid_key"
DROP_SHUTDOWN = "shutdown"
DROP_UNENCODABLE = "unencodable"
# A call that named no identity on a tracker whose identity function failed (see _tracker).
DROP_IDENTITY_FAILED = "identity_failed"
# A call made after the exit-time shutdown (a daemon thread's, a later atexit hook's).
DROP_AFTER_EXIT = "after_exit"

# uuids are made this many at a time: one call for ten full batches costs less than ten, above
# all when the worker wakes with cold caches. (A forked child starts with none: see reset().)
_UUIDS_AT_ONCE = 1000
# What the queue holds before encoding: event dicts, and track()'s flat tuples (see _events).
_UNENCODED = {dict, tuple}
_ENCODED = {bytes}
# EventQueue.take_batch compiled, writing the usual track() tuple's JSON itself (None in pure
# Python, which encodes a batch of wire dicts in one encoder call instead).
_compiled_take_batch = speedups.take_batch if speedups is not None else None


@dataclass(frozen=True)
class FlushResult:
    """What ``flush()`` achieved: true when everything queued before the call was settled
    (delivered or definitively rejected); ``pending`` counts what was still queued otherwise,
    or dropped by a shutdown that ended the wait."""

    settled: bool
    pending: int

    def __bool__(self) -> bool:
        return self.settled


@dataclass(frozen=True)
class ClientStats:
    """A snapshot of a client's counters (see :attr:`outlit.Outlit.stats`)."""

    enqueued: int
    queued: int
    delivered: int
    dropped: int
    dropped_by_reason: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    failed_requests: int = 0
    retries: int = 0


class Worker:
    """Owns the queue, the worker thread and the delivery state of one client."""

    def __init__(self, options: Options, transport: Transport, sender: Any) -> None:
        self.options = options
        self.transport = transport
        self._sender_ref = weakref.ref(sender)
        self._url = options.events_url
        self._min_gap = 1.0 / options.max_requests_per_second
        self.reset()

    def reset(self, after_fork: bool = False) -> None:
        """Fresh state: at construction and in a forked child (which must not resend our
        events). Only a forked child resets the transport: another client may share it."""
        self.queue = EventQueue()
        self.wake = threading.Event()
        # True from a caller's wake.set() for a full batch until the worker has woken: callers
        # read this attribute instead of calling wake.is_set() (a Python call) on every event.
        self.wake_pending = False
        self.urgent = threading.Event()
        self.send_lock = threading.Lock()
        # Reentrant, as every lock a tracking call may take: a signal handler that tracks can
        # run on the main thread while that thread holds it (a plain Lock would hang there).
        self.counter_lock = threading.RLock()
        # Held while events move between the queue, "in flight", delivered and dropped, so that
        # pending() and stats() never count them in two places, nor in none. No code of the
        # app's runs under it. Reentrant: _discard_queue counts its drops under it.
        self.move_lock = threading.RLock()
        self.thread: threading.Thread | None = None
        self.stopping = False
        self.flush_requested = False
        self.key_rejected = False
        self.failures = 0
        self.retry_at = 0.0
        self.retry_mandated = False
        self.failed_at = 0.0  # when the last transient failure happened (monotonic)
        self.last_send = 0.0
        self.inflight = 0
        # After a transient failure in the middle of splitting a batch the service refused as
        # too large (400/413), the next batches are no larger than the part that failed: taking
        # the whole batch again would start the split over, and with frequent failures it
        # might never get to parts small enough. Doubled after each batch delivered without a
        # split, until back at max_batch_size (None).
        self.split_cap: int | None = None
        # Flush markers taken out with the batch in flight (EventQueue.take_markers), each with
        # the number of the batch's events ahead of it: released as those settle, put back
        # with them when they go back to the queue.
        self.riders: list[tuple[int, FlushMarker]] = []
        self.delivered = 0
        self.requests = 0
        self.failed_requests = 0
        self.retries = 0
        self.dropped: dict[str, int] = {}
        # Events dropped as "shutdown" so far: a flush() that a shutdown overtook compares it
        # before and after its wait, since the shutdown releases its marker as if settled.
        self.shutdown_drops = 0
        self.queue_full_burst = 0
        # Drops counted on a caller's thread (queue_full, identity_failed), by reason, not yet
        # sent as a signal: the worker sends them, so that no receiver runs on the request path.
        self.unsignalled: dict[str, int] = {}
        self._uuids: list[str] = []
        reset_transport = getattr(self.transport, "reset_after_fork", None)
        if after_fork and reset_transport is not None:
            # Lets go of the parent's pooled connections in a forked child.
            reset_transport()

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> bool:
        """Start the thread; False when threads cannot start (interpreter shutting down)."""
        thread = threading.Thread(target=self._run, name="outlit-worker", daemon=True)
        try:
            thread.start()
        except RuntimeError:
            return False
        self.thread = thread
        return True

    @property
    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def stop(self, timeout: float) -> None:
        self.stopping = True
        self.urgent.set()
        self.wake.set()
        thread = self.thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(timeout, 0.0))

    def _run(self) -> None:
        interval = self.options.flush_interval
        next_tick = _monotonic() + interval
        while not self.stopping:
            now = _monotonic()
            if self.retry_at > now:
                # Backing off: only flush() or stop() cut the wait short. `wake_pending` is left
                # as it is meanwhile, so callers do not keep setting `wake`. A backoff may be
                # longer than the flush interval: the drops callers counted meanwhile are still
                # signalled within it (below).
                self.urgent.wait(min(self.retry_at - now, interval))
                self.urgent.clear()
            elif self.retry_at:
                pass  # a retry is due (Retry-After: 0, a reset in the past): send now
            else:
                self.wake.wait(max(next_tick - now, 0.0))
                # In this order: a caller that saw wake_pending still True had appended before
                # the clear, and the drain below takes its event.
                self.wake.clear()
                self.wake_pending = False
            if self.unsignalled:
                self._signal_caller_drops()
            if self.stopping:
                break
            now = _monotonic()
            flushing = self.flush_requested
            if flushing:
                self.flush_requested = False
                if not self.retry_mandated and self.retry_at:
                    # flush() means "now": skip the rest of a backoff we chose ourselves, but
                    # not its first initial_backoff, so that a flush per request during an
                    # outage does not turn into a request per flush.
                    self.retry_at = min(
                        self.retry_at, self.failed_at + self.options.retry.initial_backoff
                    )
            if self.retry_at > now:
                continue
            # Woken because a batch filled: send full batches only and leave the rest for the
            # next one or the interval. Under steady load this keeps requests at 100 events
            # instead of a stream of small ones (each request costs the app's GIL ~1 ms).
            retrying = bool(self.retry_at)
            full_only = not (flushing or retrying or self.queue.markers or now >= next_tick)
            try:
                self.drain(full_only=full_only)
            except Exception:  # pragma: no cover - a bug must not kill delivery for good
                logger.exception("outlit: unexpected error in the background worker")
                self.retry_at = _monotonic() + self.options.retry.max_backoff
            if now >= next_tick:
                next_tick = now + interval

    def request_flush(self) -> None:
        self.flush_requested = True
        self.urgent.set()
        self.wake.set()

    # -- draining ----------------------------------------------------------------------

    def drain(self, full_only: bool = False) -> bool:
        """Send every event waiting when the drain began (with ``full_only``, none), then
        full batches while one is waiting; False when a transient failure stopped it.

        Events queued during the drain wait for a full batch (or the next drain): chasing the
        queue to empty under steady load would send one small request per pacing gap for as
        long as the load lasts, each costing the app's GIL about as much as a full one."""
        queue = self.queue
        opts = self.options
        with self.send_lock:
            owed = 0 if full_only else queue.events_waiting()
            while True:
                queue.release_front_markers()
                if self.key_rejected:
                    self._discard_queue(DROP_INVALID_KEY)
                    return True
                if not queue:
                    self.retry_at = 0.0
                    self._end_queue_full_burst()
                    return True
                if self.retry_at > _monotonic():
                    return False
                if owed <= 0 and queue.events_waiting() < opts.max_batch_size:
                    return True
                try:
                    batch, body = self._take(self.split_cap or opts.max_batch_size)
                except BaseException:
                    self.inflight = 0  # nothing in flight that nobody sends
                    self._put_back_riders(0)
                    raise
                if not batch:
                    continue
                owed -= len(batch)
                try:
                    delivered = self._deliver(batch, body)
                finally:
                    self.inflight = 0
                    self._put_back_riders(0)  # only if _deliver raised: it settles them
                if not delivered:
                    return False

    def drain_until(self, deadline: float) -> bool:
        """Drain on the calling thread, waiting out backoffs, until settled or ``deadline``."""
        while True:
            if self.drain() and not self.queue.events_waiting():
                return True
            now = _monotonic()
            if now >= deadline:
                return False
            time.sleep(min(max(self.retry_at - now, 0.01), deadline - now))

    def _take(self, max_events: int) -> tuple[list[Any], bytes]:
        """The next batch and its body, counted in flight from the moment it leaves the queue.

        The batch leaves the queue under ``move_lock``, which ``pending()`` takes too, and in
        which no code of the app's runs: what is not encoded yet is encoded after, since
        encoding may call the app's ``to_dict()`` or ``__str__``, its log handlers and signal
        receivers (which may wait on a lock held by a thread calling ``flush()``).

        Compiled, ``take_batch`` writes the JSON of the usual track() tuple itself, so the batch
        is usually per-event bytes already. In pure Python it is usually the queued events,
        turned into wire dicts (``uuid``, int timestamp) and encoded together in one call.
        Anything else (an event dict when compiled, a value only ``encode_event`` converts, a
        body over the limit, a retry's bytes) is encoded event by event by ``_fit``.
        """
        queue = self.queue
        if _compiled_take_batch is not None:
            random = os.urandom(16 * max_events)  # the events' uuids (version 4, random)
            with self.move_lock:
                self.riders = queue.take_markers(max_events) if queue.markers else []
                batch = _compiled_take_batch(
                    queue, max_events, MAX_BODY_BYTES, BODY_OVERHEAD, FlushMarker, random
                )
                self.inflight = len(batch)
                self._keep_riders(len(batch))
            if set(map(type, batch)) <= _ENCODED:
                return batch, build_body(batch)
            return self._fit(batch)
        with self.move_lock:
            self.riders = queue.take_markers(max_events) if queue.markers else []
            batch = queue.take_batch(max_events, MAX_BODY_BYTES)
            self.inflight = len(batch)
            self._keep_riders(len(batch))
        if batch and set(map(type, batch)) <= _UNENCODED:
            self._ensure_uuids(len(batch))
            next_uuid = self._uuids.pop
            batch = [
                custom_event(item, next_uuid())
                if type(item) is tuple
                else stamp_event(item, next_uuid)
                for item in batch
            ]
            body = encode_body(batch)
            if body is not None and len(body) <= MAX_BODY_BYTES:
                return batch, body
            # Encoded one by one instead (warnings, the size limit), uuids kept.
        return self._fit(batch)

    def _fit(self, items: list[Any]) -> tuple[list[bytes], bytes]:
        """Per-event bytes of ``items`` (taken from the queue, in flight) up to the body limit,
        encoding those that are not yet; the rest goes back to the queue's front, out of
        flight. An item that cannot be sent is dropped, counted by ``_encode``."""
        batch: list[bytes] = []
        size = BODY_OVERHEAD
        dropped: list[int] = []  # indexes of items dropped here (settled: given up on for good)
        for index, item in enumerate(items):
            encoded = item if type(item) is bytes else self._encode_item(item)
            if encoded is None:
                dropped.append(index)
                continue
            added = len(encoded) + (1 if batch else 0)
            if batch and size + added > MAX_BODY_BYTES:
                rest = [encoded, *items[index + 1 :]]
                with self.move_lock:
                    self.queue.requeue(rest)
                    self.inflight = max(self.inflight - len(rest), 0)
                    self._keep_riders(index)  # markers behind the rest go back with it
                break
            batch.append(encoded)
            size += added
        if dropped and self.riders:
            # The riders count the batch's events ahead of them as they settle: a dropped one
            # is settled already, and no longer in the batch.
            self.riders = [
                (ahead - sum(1 for i in dropped if i < ahead), marker)
                for ahead, marker in self.riders
            ]
        return batch, build_body(batch)

    def _keep_riders(self, taken: int) -> None:
        """The batch holds the first ``taken`` events behind which the riders were counted:
        riders behind more go back to the queue, at their places among the events put back
        (called under the move lock, right after those events went back)."""
        back = [(ahead - taken, m) for ahead, m in self.riders if ahead > taken]
        if back:
            self.riders = [(ahead, m) for ahead, m in self.riders if ahead <= taken]
            self.queue.put_back_markers(back)

    def _release_riders(self, settled: int) -> None:
        """Release the riders with no more than ``settled`` of the batch's events ahead: the
        batch's parts settle in order, so those events are delivered or given up on."""
        if not self.riders:
            return
        done = [m for ahead, m in self.riders if ahead <= settled]
        self.riders = [(ahead, m) for ahead, m in self.riders if ahead > settled]
        for marker in done:
            marker.release()

    def _put_back_riders(self, settled: int) -> None:
        """The batch's events after the first ``settled`` went back to the queue's front: its
        riders behind them go back at their places, the others are released."""
        if not self.riders:
            return
        self._release_riders(settled)
        back = [(ahead - settled, m) for ahead, m in self.riders]
        self.riders = []
        with self.move_lock:
            self.queue.put_back_markers(back)

    def _ensure_uuids(self, count: int) -> None:
        """At least ``count`` fresh uuids in ``_uuids`` (made in bulk: see new_uuids)."""
        if len(self._uuids) < count:
            self._uuids += new_uuids(max(_UUIDS_AT_ONCE, count))

    def _next_uuid(self) -> str:
        self._ensure_uuids(1)
        return self._uuids.pop()

    def _as_bytes(self, part: list[Any]) -> list[bytes]:
        """Per-event bytes for a batch that must be split or requeued."""
        # Encoding again gives the bytes that were sent: the dicts already hold uuid and
        # timestamp. (None only if the caller changed a nested value since; _encode counts it.)
        encoded = [e if type(e) is bytes else self._encode(e) for e in part]
        return [e for e in encoded if e is not None]

    def _encode_item(self, item: Any) -> bytes | None:
        """JSON bytes of a queued event, a track() tuple or an event dict, given its ``uuid``
        and int timestamp; None when it cannot be sent (counted and logged by _encode)."""
        if type(item) is tuple:
            return self._encode(custom_event(item, self._next_uuid()))
        return self._encode(stamp_event(item, self._next_uuid))

    def _encode(self, event: dict[str, Any]) -> bytes | None:
        """JSON bytes of a wire dict ready to encode (see ``stamp_event``), or None when it
        cannot be sent (counted and logged here)."""
        try:
            encoded = encode_event(event)
        except Exception:  # encode_event is built not to raise; losing the batch would be worse
            logger.exception("outlit: dropped an event that could not be encoded as JSON")
            self._count_drop(DROP_UNENCODABLE, 1, ["could not be encoded as JSON"])
            return None
        if len(encoded) + BODY_OVERHEAD > MAX_BODY_BYTES:
            logger.error(
                "outlit: dropped event %r: %d bytes of JSON is over the service's %d-byte body "
                "limit (trim its properties)",
                event.get("eventName") or event.get("type"),
                len(encoded),
                MAX_BODY_BYTES,
            )
            self._count_drop(DROP_TOO_LARGE, 1, [f"event is {len(encoded)} bytes"])
            return None
        return encoded

    def _deliver(self, batch: list[Any], body: bytes) -> bool:
        """Send one batch, splitting it on 400/413; False after a transient failure.

        ``body`` is the encoded ``batch``; parts and retries use per-event bytes."""
        pending = [batch]
        first: bytes | None = body
        split = False
        settled = 0  # the batch's events settled so far: parts settle in order
        while pending:
            part = pending.pop(0)
            outcome = self._post(part, first)
            first = None
            if outcome in ("ok", "dropped"):
                settled += len(part)
                self._release_riders(settled)
            elif outcome == "split":
                split = True
                part = self._as_bytes(part)
                middle = len(part) // 2
                pending[0:0] = [half for half in (part[:middle], part[middle:]) if half]
            elif outcome == "retry":
                unsent = [event for p in [part, *pending] for event in p]
                if self.stopping:
                    # shutdown() has already given up waiting: nobody will send these again.
                    self._count_drop(DROP_SHUTDOWN, len(unsent), [])
                    self.inflight = 0
                    for _, marker in self.riders:  # counted first: their flushes see the drop
                        marker.abandoned = True
                    self._release_riders(sys.maxsize)
                    return False
                # Frozen as bytes now (outside the lock: encoding may run the app's code):
                # every later attempt sends these same bytes. Back in the queue and out of
                # flight in one move, as pending() sees it, the riders behind them too.
                frozen = self._as_bytes(unsent)
                with self.move_lock:
                    self.queue.requeue(frozen)
                    self.inflight = 0
                    self._put_back_riders(settled)
                if split:
                    self.split_cap = len(part)
                return False
            elif outcome == "bad_key":
                self._count_drop(DROP_INVALID_KEY, sum(len(p) for p in [part, *pending]), [])
                self._release_riders(sys.maxsize)
                return True
        self._release_riders(sys.maxsize)  # every part settled
        if not split and self.split_cap is not None:
            doubled = self.split_cap * 2
            self.split_cap = None if doubled >= self.options.max_batch_size else doubled
        return True

    def _pace(self) -> None:
        # Never faster than the service's documented per-key request rate, unless the
        # transport stands in for the service in memory (outlit.testing's recorder).
        if not getattr(self.transport, "paced", True):
            return
        wait = self.last_send + self._min_gap - _monotonic()
        if wait > 0:
            time.sleep(wait)
        self.last_send = _monotonic()

    def _post(self, part: list[Any], body: bytes | None = None) -> str:
        """One HTTP request. Returns "ok", "dropped", "split", "retry" or "bad_key"."""
        self._pace()
        if body is None:
            body = build_body(part)
        count = len(part)
        started = _monotonic()
        self.requests += 1
        try:
            response = self.transport.send(Request(self._url, body, self.options.timeout))
        except TransportError as exc:
            return self._transient(count, None, str(exc), {})
        except Exception as exc:  # a custom transport's bug is still only a failed send
            logger.debug("outlit: transport raised", exc_info=True)
            return self._transient(count, None, f"{type(exc).__name__}: {exc}", {})
        status = response.status_code
        elapsed_ms = (_monotonic() - started) * 1000
        logger.debug(
            "outlit: POST %d events (%d bytes) -> %d in %.1f ms",
            count,
            len(body),
            status,
            elapsed_ms,
        )
        if 200 <= status < 300:
            if self.failures:
                logger.info("outlit: delivery recovered after %d failed attempts", self.failures)
            self._after_answer(response)
            rejected = self._partial_rejections(response, count) if status == 207 else []
            # Settled: out of flight and delivered in one move, as stats() reads them.
            with self.move_lock:
                self.inflight = max(self.inflight - (count - len(rejected)), 0)
                self.delivered += count - len(rejected)
            self._emit("batch_delivered", count=count - len(rejected), status=status)
            if rejected:
                messages = [f"events[{i}]: {m}" for i, m in rejected]
                logger.error(
                    "outlit: the service rejected %d of %d events: %s",
                    len(rejected),
                    count,
                    "; ".join(messages[:10]),
                )
                self._count_drop(DROP_REJECTED, len(rejected), messages)
            return "ok"
        if is_transient(status):
            return self._transient(count, status, _message(response), response.headers)
        self.failed_requests += 1
        self._after_answer(response)
        if status in (401, 403, 404):
            self.key_rejected = True
            logger.error(
                "outlit: the service refused public key %s at %s (HTTP %d: %s). Check "
                "OUTLIT_PUBLIC_KEY / public_key; no more events will be sent by this process.",
                mask_key(self.options.public_key),
                self.options.api_host,
                status,
                _message(response),
            )
            self._emit(
                "batch_failed", count=count, status=status, error=_message(response), retry_in=None
            )
            return "bad_key"
        if status in (400, 413, 422) and count > 1:
            logger.debug(
                "outlit: HTTP %d for %d events; splitting to find the bad ones", status, count
            )
            # Counted in failed_requests like every failed request, and said the same way:
            # the same events go again at once, in halves.
            self._emit(
                "batch_failed", count=count, status=status, error=_message(response), retry_in=0.0
            )
            return "split"
        message = _message(response)
        logger.error(
            "outlit: the service rejected %s (HTTP %d: %s); dropped",
            "an event" if count == 1 else f"a batch of {count} events",
            status,
            message,
        )
        self._emit("batch_failed", count=count, status=status, error=message, retry_in=None)
        self._count_drop(DROP_REJECTED, count, [message])
        return "dropped"

    def _after_answer(self, response: Response) -> None:
        """The service answered for good (delivered or refused): the failure streak is over."""
        self.failures = 0
        self.retry_mandated = False
        self.retry_at = 0.0
        if response.headers.get("x-ratelimit-remaining", "").strip() == "0":
            delay = server_delay(200, response.headers, cap=self.options.retry.max_retry_after)
            if delay:
                self.retry_at = _monotonic() + delay
                self.retry_mandated = True

    def _transient(self, count: int, status: int | None, error: str, headers: Any) -> str:
        self.failures += 1
        self.failed_requests += 1
        self.retries += 1
        self.failed_at = _monotonic()
        policy = self.options.retry
        mandated = server_delay(status or 0, headers, cap=policy.max_retry_after)
        delay = mandated if mandated is not None else policy.backoff(self.failures)
        self.retry_at = _monotonic() + delay
        self.retry_mandated = mandated is not None
        what = f"HTTP {status}" if status is not None else "network error"
        log = logger.warning if self.failures == 1 or self.failures % 10 == 0 else logger.debug
        log(
            "outlit: sending %d events failed (%s: %s); retry %d in %.1f s, events stay queued",
            count,
            what,
            error,
            self.failures,
            delay,
        )
        self._emit("batch_failed", count=count, status=status, error=error, retry_in=delay)
        return "retry"

    def _partial_rejections(self, response: Response, count: int) -> list[tuple[int, str]]:
        """The events a 207 rejected, each once: (index in the batch, the service's message).

        An error names its event by ``index`` (the service's documented answer) or by a
        ``path`` starting ``["events", i]`` (the validation issues of its OpenAPI description).
        Several errors for one event (two bad fields) reject it once, messages joined."""
        try:
            errors = response.json().get("errors") or []
        except Exception:
            return []
        found: dict[int, str] = {}
        for item in errors if isinstance(errors, list) else []:
            if not isinstance(item, dict):
                continue
            index = item.get("index")
            path = item.get("path")
            if index is None and isinstance(path, list) and len(path) > 1 and path[0] == "events":
                index = path[1]
            if type(index) is not int or not 0 <= index < count:
                continue
            message = str(item.get("message", "rejected"))
            if isinstance(path, list) and len(path) > 2:
                message = f"{'.'.join(str(part) for part in path[2:])}: {message}"
            found[index] = f"{found[index]}; {message}" if index in found else message
        return sorted(found.items())

    # -- counting, dropping, signalling ------------------------------------------------

    def _count_drop(
        self, reason: str, count: int, messages: list[str], in_flight: bool = True
    ) -> None:
        """Count and signal ``count`` dropped events: by default events of the batch being
        sent (no longer in flight); ``in_flight=False`` for events dropped from the queue."""
        if count <= 0:
            return
        self._add_drop(reason, count, in_flight)
        self._emit("events_dropped", count=count, reason=reason, messages=messages)

    def _add_drop(self, reason: str, count: int, in_flight: bool) -> None:
        # Out of flight (or of the queue) and dropped in one move, as stats() reads them.
        with self.move_lock, self.counter_lock:
            if in_flight and self.inflight:
                self.inflight = max(self.inflight - count, 0)
            self.dropped[reason] = self.dropped.get(reason, 0) + count
            if reason == DROP_SHUTDOWN:
                self.shutdown_drops += count

    def note_queue_full(self) -> None:
        """Called on the request path when the queue is at its cap (rare; may take a lock).

        Counted here; the signal is sent by the worker (see _signal_caller_drops), so that no
        receiver runs on the request path."""
        with self.counter_lock:
            self._count_caller_drop(DROP_QUEUE_FULL)
            first = self.queue_full_burst == 0
            self.queue_full_burst += 1
        if first:
            logger.warning(
                "outlit: queue full (max_queue_size=%d); dropping new events until it drains. "
                "Is %s reachable?",
                self.options.max_queue_size,
                self.options.api_host,
            )

    def note_caller_drop(self, reason: str) -> None:
        """Called on the request path for a call that is not queued: one whose tracker's
        identity function failed (already logged there), or one made after the exit-time
        shutdown. Counted here, signalled by the worker (or at the next shutdown)."""
        with self.counter_lock:
            self._count_caller_drop(reason)
        if reason == DROP_AFTER_EXIT:
            self._signal_caller_drops()  # no worker will wake again: the process is exiting

    def _count_caller_drop(self, reason: str) -> None:
        # Under counter_lock.
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
        self.unsignalled[reason] = self.unsignalled.get(reason, 0) + 1

    def pending(self) -> int:
        """Events waiting or in flight, read while no batch moves between the two (a batch
        counted in neither would let a flush() return at once; in both, it would be counted
        twice). A move runs no code of the app's and takes well under a millisecond."""
        with self.move_lock:
            return self.queue.events_waiting() + self.inflight

    def signal_caller_drops(self) -> None:
        """Send now what _signal_caller_drops would when the worker next wakes (from shutdown(),
        for drops counted while no worker ran)."""
        self._signal_caller_drops()

    def _signal_caller_drops(self) -> None:
        """One events_dropped signal per reason for the drops callers counted since the last."""
        with self.counter_lock:
            counts, self.unsignalled = self.unsignalled, {}
        for reason, count in counts.items():
            self._emit("events_dropped", count=count, reason=reason, messages=[])

    def _end_queue_full_burst(self) -> None:
        self._signal_caller_drops()
        with self.counter_lock:
            burst, self.queue_full_burst = self.queue_full_burst, 0
        if burst:
            logger.warning(
                "outlit: the queue drained; %d events were dropped while it was full", burst
            )

    def _discard_queue(self, reason: str) -> None:
        with self.move_lock:  # out of the queue and dropped in one move, as stats() reads them
            count = self.queue.discard_all(abandoned=reason == DROP_SHUTDOWN)
            if count:
                self._add_drop(reason, count, in_flight=False)
        if count:
            self._emit("events_dropped", count=count, reason=reason, messages=[])

    def discard_for_shutdown(self) -> tuple[int, int]:
        """Drop what is still queued; return (queued, in flight). Events in a request that is
        still running are counted when it ends: delivered, or dropped as "shutdown"."""
        self._signal_caller_drops()
        left = self.queue.events_waiting()
        if left:
            self._discard_queue(DROP_SHUTDOWN)
        # A batch still in flight may hold events queued ahead of these markers.
        self.queue.release_all_markers(abandoned=True)
        return left, self.inflight

    def _emit(self, name: str, **kwargs: Any) -> None:
        # Nobody can have connected a receiver unless outlit.signals was imported.
        module = sys.modules.get("outlit.signals")
        sender = self._sender_ref()
        if module is None or sender is None:
            return
        signal: Any = getattr(module, name)
        if not signal.receivers:
            return
        # Each receiver on its own, so that one that raises does not silence the others.
        for receiver in signal.receivers_for(sender):
            try:
                result = receiver(sender, **kwargs)
            except Exception:
                logger.exception("outlit: a receiver of outlit.signals.%s raised", name)
                continue
            if isinstance(result, types.CoroutineType):
                # No event loop runs on this thread: the coroutine would never run.
                result.close()
                logger.error(
                    "outlit: the receiver %r of outlit.signals.%s is async and was not run: "
                    "signals are sent from outlit's worker thread; connect a plain function "
                    "(it may hand the work to your loop with asyncio.run_coroutine_threadsafe)",
                    receiver,
                    name,
                )

    def stats(self) -> ClientStats:
        # One snapshot: the worker moves events between the queue, flight, delivered and
        # dropped under move_lock, and no code of the app's runs under it.
        with self.move_lock, self.counter_lock:
            dropped = dict(self.dropped)
            queued = self.pending()
            delivered = self.delivered
        dropped_total = sum(dropped.values())
        # Dropped before they were queued: never counted as enqueued.
        before_enqueue = (DROP_QUEUE_FULL, DROP_IDENTITY_FAILED, DROP_AFTER_EXIT)
        after_enqueue = dropped_total - sum(dropped.get(reason, 0) for reason in before_enqueue)
        return ClientStats(
            enqueued=queued + delivered + after_enqueue,
            queued=queued,
            delivered=delivered,
            dropped=dropped_total,
            dropped_by_reason=dropped,
            requests=self.requests,
            failed_requests=self.failed_requests,
            retries=self.retries,
        )


def _message(response: Response) -> str:
    if 300 <= response.status_code < 400:
        location = response.headers.get("location") or "an unnamed location"
        return f"redirected to {location}: set api_host to the address that answers itself"
    try:
        payload = response.json()
    except Exception:
        text = response.content[:200].decode("utf-8", "replace").strip()
        return text or "no message"
    if isinstance(payload, dict):
        message = payload.get("message") or payload.get("error")
        errors = payload.get("errors")
        if isinstance(errors, list) and errors:
            details = "; ".join(
                str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors[:5]
            )
            if not message or details == message:
                return details
            return f"{message}: {details}"
        if message:
            return str(message)
    return str(payload)[:200]
