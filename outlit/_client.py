"""The public client: ``Outlit`` with ``track``, ``identify``, ``user.*``, ``customer.*``.

Every tracking call validates its arguments, builds the wire event (see ``_events``) and appends
it to the queue: no I/O, no JSON, no lock on the caller's thread. The worker (``_worker``) does
the rest. Clients survive ``fork()`` (the child starts empty) and flush at interpreter exit.
"""

from __future__ import annotations

import atexit
import functools
import os
import threading
import time
import weakref

from ._compiled import speedups
from ._events import (
    TRACK_IDENTITY,
    build_billing_event,
    build_identify_event,
    build_stage_event,
    copy_object,
    identity_text,
    timestamp_ms,
    usable_identities,
)
from ._exceptions import ClientClosedError, InvalidEventError, OptionError
from ._options import (
    DEFAULT_FLUSH_INTERVAL,
    DEFAULT_MAX_BATCH_SIZE,
    DEFAULT_MAX_QUEUE_SIZE,
    DEFAULT_MAX_REQUESTS_PER_SECOND,
    DEFAULT_SHUTDOWN_TIMEOUT,
    DEFAULT_TIMEOUT,
    Options,
    mask_key,
    resolve_options,
)

# The worker, transport, JSON encoding and logging load when the first client is made, so
# that `import outlit` costs a few milliseconds (an app imports it at startup, often unused).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import datetime as _dt
    from collections.abc import Callable, Mapping
    from types import TracebackType
    from typing import Any

    from typing_extensions import Unpack

    from ._log import SafeLogger
    from ._retry import RetryPolicy
    from ._tracker import BoundTracker, IdentitySource
    from ._transport import Transport
    from ._types import DeviceId, NumericId, ServerIdentifyOptions
    from ._worker import ClientStats, FlushResult

    Timestamp = int | float | _dt.datetime | None


_now = time.time

# The compiled body of track()'s usual call, when built (see _compiled): it queues the call and
# returns True, or returns False for the Python code of Outlit.track to handle it.
_queue_track: Callable[..., bool] | None = None
if speedups is not None:
    speedups.use_client_globals(globals())
    _queue_track = speedups.queue_track


def _closed_error() -> ClientClosedError:
    return ClientClosedError("this Outlit client was shut down; create a new one to track again")


def _logger() -> SafeLogger:
    from ._log import get_logger

    return get_logger("outlit")


#: How long ``flush()`` waits by default before giving up (seconds).
DEFAULT_FLUSH_TIMEOUT = 30.0

_NEW, _RUNNING, _CLOSED, _DISABLED = 0, 1, 2, 3
_STATE_NAMES = {_NEW: "new", _RUNNING: "running", _CLOSED: "closed", _DISABLED: "disabled"}

_live_clients: weakref.WeakSet[Outlit] = weakref.WeakSet()
# Clients whose worker runs, held until shutdown(): one that the app stopped referencing keeps
# sending, and the exit-time flush still finds it (else its queue would die with it).
_running_clients: set[Outlit] = set()


class Outlit:
    """A batching Outlit client. Create one per process and share it.

    >>> outlit = Outlit(public_key="pk_...")          # or set OUTLIT_PUBLIC_KEY
    >>> outlit.track(email="jane@acme.com", event_name="report_exported")
    """

    def __init__(
        self,
        public_key: str | None = None,
        *,
        api_host: str | None = None,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        timeout: float = DEFAULT_TIMEOUT,
        max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE,
        enabled: bool = True,
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
        max_requests_per_second: float = DEFAULT_MAX_REQUESTS_PER_SECOND,
        retry: RetryPolicy | None = None,
        transport: Transport | None = None,
    ) -> None:
        self.options: Options = resolve_options(
            public_key=public_key,
            api_host=api_host,
            flush_interval=flush_interval,
            max_batch_size=max_batch_size,
            timeout=timeout,
            max_queue_size=max_queue_size,
            enabled=enabled,
            shutdown_timeout=shutdown_timeout,
            max_requests_per_second=max_requests_per_second,
            retry=retry,
            transport=transport,
        )
        from ._transport import HTTPTransport
        from ._worker import Worker

        self._transport: Transport = transport if transport is not None else HTTPTransport()
        self._worker = Worker(self.options, self._transport, self)
        _register_before_fork()
        # Reentrant: a signal handler that tracks may run while this thread holds it (see
        # Worker.counter_lock).
        self._state_lock = threading.RLock()
        self._starting = False  # a call is starting the worker (see _begin)
        self._closed_at_exit = False  # closed by the exit-time shutdown, not by the app
        self._flushes_given_up = 0  # flushes in a row that gave up (see _flush_outcome)
        # Set when a shutdown() has finished, with its result: a concurrent call waits for it.
        self._shut_down = threading.Event()
        self._shutdown_result: FlushResult | None = None
        self._shutting_down_in: int | None = None  # the thread running shutdown(), if any
        self._max_queue = self.options.max_queue_size
        # The request path compares the queue's length (before appending) with these two only:
        # _room is 0 unless the client is running, which sends every call to _has_room().
        self._room = 0
        self._wake_at = self.options.max_batch_size - 1
        self._set_state(_NEW if enabled else _DISABLED)
        self._bind_queue()
        self.user = UserAPI(self)
        self.customer = CustomerAPI(self)
        _live_clients.add(self)

    def _set_state(self, state: int) -> None:
        self._state = state
        self._room = self._max_queue if state == _RUNNING else 0

    def _bind_queue(self) -> None:
        # Cached on the client so that the request path does one attribute read each.
        self._queue = self._worker.queue
        self._wake = self._worker.wake

    # -- tracking calls ------------------------------------------------------------------

    def track(
        self,
        *,
        event_name: str,
        email: str | None = None,
        user_id: NumericId | None = None,
        fingerprint: DeviceId | None = None,
        customer_id: NumericId | None = None,
        customer_domain: str | None = None,
        properties: Mapping[str, Any] | None = None,
        timestamp: Timestamp = None,
    ) -> None:
        """Queue a custom event. Needs one of email, user_id, fingerprint, customer_id or
        customer_domain."""
        if _queue_track is not None and _queue_track(
            self,
            self._queue,
            self._room,
            self._wake_at,
            event_name,
            email,
            user_id,
            fingerprint,
            customer_id,
            customer_domain,
            properties,
            timestamp,
        ):
            return
        # Checked right here rather than in a helper in _events: the call saved is a tenth of
        # this method's cost. Identity values that are not plain strings go through
        # identity_text(), which converts, blanks out or raises. Only the first identity given
        # is checked for blankness here (there must be one usable identity); a blank later one
        # is left out when the worker builds the wire dict. The event is queued as a flat tuple,
        # much cheaper to build than the dict: see custom_event.
        if type(event_name) is not str or not event_name or event_name.isspace():
            if not isinstance(event_name, str) or not event_name.strip():
                raise InvalidEventError(
                    "track() needs event_name, a non-blank string such as 'report_exported'"
                )
            event_name = str(event_name)
        if email is not None and type(email) is not str:
            email = identity_text("email", email)
        if user_id is not None and type(user_id) is not str:
            user_id = identity_text("user_id", user_id)
        if customer_id is not None and type(customer_id) is not str:
            customer_id = identity_text("customer_id", customer_id)
        if customer_domain is not None and type(customer_domain) is not str:
            customer_domain = identity_text("customer_domain", customer_domain)
        if fingerprint is not None and type(fingerprint) is not str:
            fingerprint = identity_text("fingerprint", fingerprint)
        first = email or user_id or customer_domain or customer_id or fingerprint
        if not first or first.isspace():
            email, user_id, customer_domain, customer_id, fingerprint = usable_identities(
                "track", TRACK_IDENTITY, email, user_id, customer_domain, customer_id, fingerprint
            )
        if properties is not None:
            # Copied, so a caller changing its dict after the call cannot change what is sent.
            properties = (
                properties.copy()
                if type(properties) is dict
                else copy_object("properties", properties)
            )
        timestamp = _now() if timestamp is None else timestamp_ms(timestamp)
        # What _enqueue does, inlined for the same reason.
        queue = self._queue
        size = len(queue)
        if size >= self._room and not self._has_room():
            return
        queue.append(
            (
                event_name,
                email,
                user_id,
                fingerprint,
                customer_id,
                customer_domain,
                properties,
                timestamp,
            )
        )
        if size >= self._wake_at and not self._worker.wake_pending:
            self._wake_worker()

    def identify(
        self,
        *,
        email: str | None = None,
        user_id: NumericId | None = None,
        fingerprint: DeviceId | None = None,
        customer_id: NumericId | None = None,
        customer_domain: str | None = None,
        traits: Mapping[str, Any] | None = None,
        customer_traits: Mapping[str, Any] | None = None,
        timestamp: Timestamp = None,
    ) -> None:
        """Update user (and optionally customer) traits. Needs email or user_id."""
        self._enqueue(
            build_identify_event(
                email,
                user_id,
                fingerprint,
                customer_id,
                customer_domain,
                traits,
                customer_traits,
                timestamp,
            )
        )

    def _enqueue(self, event: dict[str, Any]) -> None:
        queue = self._queue
        size = len(queue)
        if size >= self._room and not self._has_room():
            return
        queue.append(event)
        if size >= self._wake_at and not self._worker.wake_pending:
            self._wake_worker()

    def _wake_worker(self) -> None:
        """A batch is ready: wake the worker unless already woken (once per batch; the Python
        paths test wake_pending first, so that a stalled worker costs them no call)."""
        if not self._worker.wake_pending:
            self._worker.wake_pending = True
            self._wake.set()

    def _has_room(self) -> bool:
        """Slow path of a call: start the worker on first use, refuse after shutdown, skip when
        disabled, or count an event the full queue cannot take."""
        if self._state != _RUNNING and not self._begin():
            return False
        if self._queue.events_waiting() >= self._max_queue:  # flush markers do not count
            self._worker.note_queue_full()
            return False
        return True

    def _begin(self) -> bool:
        """Slow path of the first call: start the worker, or refuse (closed) or skip (disabled)."""
        state = self._state
        if state == _RUNNING:
            return True
        if state == _DISABLED:
            return False
        if state == _CLOSED:
            if self._closed_at_exit:
                # The process is exiting and the app never called shutdown(): a daemon thread
                # or a later atexit hook still tracking must not get an exception for it.
                self._worker.note_caller_drop("after_exit")
                return False
            raise _closed_error()
        # The lock only elects the call that starts the worker; the start happens outside it.
        # Thread.start() waits until the thread runs, and under gevent that wait lets other
        # greenlets run: one of them calling here while the lock is held would block the whole
        # process, since a lock made before gevent patched threading (made at fork, in a
        # gunicorn --preload child) is a real OS lock. Calls meanwhile queue their events for
        # the worker about to start.
        with self._state_lock:
            if self._state != _NEW or self._starting:
                return self._state in (_RUNNING, _NEW)
            self._starting = True
        try:
            started = self._worker.start()
        except BaseException:
            with self._state_lock:
                self._starting = False  # still NEW: a later call tries again
            raise
        with self._state_lock:
            self._starting = False
            # flush() and shutdown() wait for the start to end (see _wait_for_start), so the
            # state is still NEW here, unless shutdown() ran out of time meanwhile.
            abandoned = self._state != _NEW
            if not abandoned:
                self._set_state(_RUNNING)
                _running_clients.add(self)
        if abandoned:
            if started:
                self._worker.stop(0)
            return False
        if not started:
            _logger().debug("outlit: cannot start a thread now; events will be sent on flush")
        _flush_at_child_exit()
        return self._state == _RUNNING

    def _note_identity_failed(self) -> None:
        """A request-bound tracker's call that named no identity, after the tracker's identity
        function failed: not sent, and counted as dropped (see _tracker). After shutdown() it
        raises, as every call does."""
        state = self._state
        if state == _CLOSED and not self._closed_at_exit:
            raise _closed_error()
        if state == _NEW:
            # The worker signals the drop when it next wakes: it must exist for that, even
            # if every call so far went through a failing identity function.
            self._begin()
        if state != _DISABLED:
            self._worker.note_caller_drop("identity_failed")

    # -- delivery ------------------------------------------------------------------------

    @property
    def queue_size(self) -> int:
        """Events accepted but not yet delivered (waiting or being sent right now)."""
        return self._worker.pending()

    @property
    def stats(self) -> ClientStats:
        """Counters: enqueued, queued, delivered, dropped (by reason), requests, retries."""
        return self._worker.stats()

    def flush(self, timeout: float | None = None) -> FlushResult:
        """Send everything queued now and wait until it is delivered or given up on.

        Waits at most ``timeout`` seconds (default 30). Returns a :class:`FlushResult`, true when
        everything queued before the call was delivered or definitively rejected. Never raises
        because of the network.
        """
        from ._queue import FlushMarker

        limit = DEFAULT_FLUSH_TIMEOUT if timeout is None else _wait_limit("timeout", timeout)
        early = self._flush_needless(limit)
        if early is not None:
            return early
        worker = self._worker
        drops_before = worker.shutdown_drops
        abandoned = False
        if worker.alive:
            marker = FlushMarker()
            worker.queue.add_marker(marker)
            worker.request_flush()
            settled = marker.done.wait(limit)
            if not settled:
                worker.queue.cancel_marker(marker)
                settled = marker.done.is_set()  # released by the worker just in time
            abandoned = marker.abandoned
        else:
            settled = worker.drain_until(time.monotonic() + limit)
        return self._flush_outcome(settled, limit, drops_before, abandoned)

    def _flush_needless(self, limit: float) -> FlushResult | None:
        """flush()'s answer when it has nothing to wait for (or cannot wait), else None."""
        from ._worker import FlushResult

        if self._starting:
            self._wait_for_start(time.monotonic() + limit)
            if self._starting:  # still: what calls queued meanwhile waits for the worker
                pending = self.queue_size
                _logger().warning(
                    "outlit: flush gave up after %.1f s while the worker was starting, with %d "
                    "events queued (they stay queued)",
                    limit,
                    pending,
                )
                return FlushResult(pending == 0, pending)
        if self._state in (_DISABLED, _NEW):
            return FlushResult(True, 0)
        if self.queue_size == 0 and not self._worker.unsignalled:
            # (With drops that callers counted, identity_failed or queue_full, and the worker
            # has not signalled yet, the flush wakes it and waits: they are signalled, on the
            # worker's thread as always, by the time it returns.)
            return FlushResult(True, 0)
        if threading.current_thread() is self._worker.thread:
            # From a signal receiver: the worker cannot wait for itself.
            _logger().warning(
                "outlit: flush() called on the worker thread (from a signal receiver?) ignored"
            )
            return FlushResult(False, self.queue_size)
        return None

    def _flush_outcome(
        self, settled: bool, limit: float, drops_before: int, abandoned: bool = False
    ) -> FlushResult:
        """``drops_before``: the worker's shutdown drops when the wait began, to count those
        of a shutdown during it; ``abandoned``: the shutdown let the flush go while events
        ahead may still have been in flight. Either way the flush's marker was released
        without those events settling. (Some may have been queued after the flush began: it
        errs on the side of saying so.)"""
        from ._worker import FlushResult

        # queue_size first: it waits for a move under way, such as a shutdown dropping the
        # queue (which releases the markers before it counts the drop).
        pending = self.queue_size
        shutdown_drops = self._worker.shutdown_drops - drops_before
        if shutdown_drops > 0 or abandoned:
            # shutdown() says it, logged. In flight and since delivered: settled after all.
            lost = pending + shutdown_drops
            return FlushResult(lost == 0, lost)
        if settled:
            self._flushes_given_up = 0
        elif self._state != _CLOSED:  # shutdown() says what it drops itself
            # During an outage a flush per request (serverless) gives up on every request:
            # the first is said, then every tenth.
            self._flushes_given_up += 1
            if self._flushes_given_up % 10 == 1:
                _logger().warning(
                    "outlit: flush gave up after %.1f s with %d events still queued (they stay "
                    "queued)%s",
                    limit,
                    pending,
                    ""
                    if self._flushes_given_up == 1
                    else f"; {self._flushes_given_up} flushes in a row gave up",
                )
        return FlushResult(settled, pending if not settled else 0)

    def shutdown(self, timeout: float | None = None) -> FlushResult:
        """Flush (waiting at most ``timeout``, default ``shutdown_timeout``) and stop the worker.

        Idempotent. Tracking calls afterwards raise :class:`~outlit.ClientClosedError`.
        """
        limit = (
            self.options.shutdown_timeout if timeout is None else _wait_limit("timeout", timeout)
        )
        # Events queued while another call was starting the worker are delivered like any:
        # the state is closed only once no start is under way (or the time is up).
        deadline = time.monotonic() + limit
        while True:
            with self._state_lock:
                if not self._starting or time.monotonic() >= deadline:
                    was = self._state
                    if was != _CLOSED:
                        self._shutting_down_in = threading.get_ident()
                    self._set_state(_CLOSED)
                    break
            self._wait_for_start(deadline)
        from ._worker import FlushResult

        if was == _CLOSED:
            # Another call's shutdown may still be flushing (a daemon thread's, when the
            # exit-time one comes): wait for it, within this call's own limit, and say how it
            # ended. Not when that call is this thread's own, interrupted by a signal handler
            # that shuts down: it cannot go on until the handler returns.
            if self._shutting_down_in == threading.get_ident() or not self._shut_down.wait(
                max(deadline - time.monotonic(), 0.0)
            ):
                pending = self.queue_size
                return FlushResult(pending == 0, pending)
            return self._shutdown_result or FlushResult(True, 0)
        result = FlushResult(True, 0)
        try:
            result = self._shut_down_now(was, limit)
        finally:
            self._shutdown_result = result
            self._shutting_down_in = None
            self._shut_down.set()
        return result

    def _shut_down_now(self, was: int, limit: float) -> FlushResult:
        from ._worker import FlushResult

        started = time.monotonic()
        result = FlushResult(True, 0)
        if was == _NEW and self._worker.queue.events_waiting():
            # Queued while a worker start went on past the time given (see _begin): dropped,
            # and said so, like what a running client could not deliver in time.
            queued, _ = self._worker.discard_for_shutdown()
            _logger().warning(
                "outlit: shut down with %d undelivered events (the worker was still starting; "
                "shutdown_timeout=%.1f s)",
                queued,
                limit,
            )
            result = FlushResult(False, queued)
        if was == _RUNNING:
            # The state is already closed: calls made from now on raise, and this last flush
            # waits only for what was accepted before.
            result = self.flush(limit)
            self._worker.stop(max(limit - (time.monotonic() - started), 0.05))
            _queued, in_flight = self._worker.discard_for_shutdown()
            # The worker may itself have given up on a batch it was retrying when stop() came.
            lost = self._worker.stats().dropped_by_reason.get("shutdown", 0) + in_flight
            if lost:
                _logger().warning(
                    "outlit: shut down with %d undelivered events (%d in a request still in "
                    "flight; shutdown_timeout=%.1f s)",
                    lost,
                    in_flight,
                    limit,
                )
                result = FlushResult(False, lost)
        if not self._worker.alive:
            # A worker still inside a send (it outlived the join) keeps the transport; the
            # process is exiting or the thread ends after that one request.
            self._transport.close()
        # Drops counted on callers' threads while no worker ran to signal them.
        self._worker.signal_caller_drops()
        _live_clients.discard(self)
        _running_clients.discard(self)
        return result

    close = shutdown

    async def aflush(self, timeout: float | None = None) -> FlushResult:
        """``flush()`` for async code: the event loop keeps running while it waits.

        The worker wakes the loop when the events are settled, so that many waits at once
        (one per request, with a flush after each response) take no thread each."""
        from . import _aio
        from ._queue import FlushMarker

        worker = self._worker
        if self._starting:  # rare: flush() waits for the start, which takes a thread here
            return await _aio.to_thread(self.flush, timeout)
        limit = DEFAULT_FLUSH_TIMEOUT if timeout is None else _wait_limit("timeout", timeout)
        early = self._flush_needless(limit)
        if early is not None:
            return early
        if not worker.alive:  # rare: no worker can run, and flush() sends on its own
            return await _aio.to_thread(self.flush, timeout)
        woken = _aio.wakeup()  # on the worker's thread, woken.fire() wakes this wait
        drops_before = worker.shutdown_drops
        marker = FlushMarker(on_done=woken.fire)
        worker.queue.add_marker(marker)
        worker.request_flush()
        try:
            await woken.wait(limit)
        finally:
            if not marker.done.is_set():  # timed out, or the awaiting task was cancelled
                worker.queue.cancel_marker(marker)
        return self._flush_outcome(marker.done.is_set(), limit, drops_before, marker.abandoned)

    async def ashutdown(self, timeout: float | None = None) -> FlushResult:
        """``shutdown()`` for async code, without blocking the event loop."""
        from . import _aio

        return await _aio.to_thread(self.shutdown, timeout)

    aclose = ashutdown

    def bind(self, identity: IdentitySource = None) -> BoundTracker:
        """A tracker whose calls fill in ``identity`` (a dict, or a function returning one) for
        the fields a call leaves out. The framework adapters use it for request-bound trackers."""
        return _tracker_class()(self, identity)

    # -- context managers and lifecycle hooks ---------------------------------------------

    def __enter__(self) -> Outlit:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    async def __aenter__(self) -> Outlit:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.ashutdown()

    @property
    def closed(self) -> bool:
        return self._state == _CLOSED

    def __repr__(self) -> str:
        return (
            f"<Outlit public_key={mask_key(self.options.public_key)!r} api_host={self.options.api_host!r} "
            f"state={_STATE_NAMES[self._state]} queue_size={self.queue_size}>"
        )

    def _wait_for_start(self, deadline: float) -> None:
        """Wait while a call is starting the worker (at most until ``deadline``): calls made
        meanwhile queued events that the starting worker will send. Polled rather than waited
        on with a lock: the starting call may be a greenlet that this wait must let run."""
        while self._starting and time.monotonic() < deadline:
            time.sleep(0.001)

    def _after_fork_in_child(self) -> None:
        # The parent's queued events belong to the parent: the child starts empty, and its
        # worker thread (which did not survive fork) starts again on first use.
        self._state_lock = threading.RLock()
        self._starting = False
        if self._state == _CLOSED and not self._shut_down.is_set():
            # A shutdown under way in a parent's thread, which the child does not have: the
            # child's own (at its exit) must not wait for it.
            self._shutting_down_in = None
            self._shut_down.set()
        self._worker.reset(after_fork=True)
        self._bind_queue()
        if self._state == _RUNNING:
            self._set_state(_NEW)
            _running_clients.discard(self)  # held again when the child starts its worker


class UserAPI:
    """Contact lifecycle stages: ``outlit.user.activate/engaged/inactive`` and ``identify``."""

    def __init__(self, client: Outlit) -> None:
        self._client = client

    def identify(self, **kwargs: Unpack[ServerIdentifyOptions]) -> None:
        """Same as :meth:`Outlit.identify`."""
        self._client.identify(**kwargs)

    def activate(
        self,
        *,
        email: str | None = None,
        user_id: NumericId | None = None,
        fingerprint: DeviceId | None = None,
        properties: Mapping[str, Any] | None = None,
        timestamp: Timestamp = None,
    ) -> None:
        """Mark a contact activated. Needs one of fingerprint, email or user_id."""
        self._client._enqueue(
            build_stage_event("activated", email, user_id, fingerprint, properties, timestamp)
        )

    def engaged(
        self,
        *,
        email: str | None = None,
        user_id: NumericId | None = None,
        fingerprint: DeviceId | None = None,
        properties: Mapping[str, Any] | None = None,
        timestamp: Timestamp = None,
    ) -> None:
        """Mark a contact engaged. Needs one of fingerprint, email or user_id."""
        self._client._enqueue(
            build_stage_event("engaged", email, user_id, fingerprint, properties, timestamp)
        )

    def inactive(
        self,
        *,
        email: str | None = None,
        user_id: NumericId | None = None,
        fingerprint: DeviceId | None = None,
        properties: Mapping[str, Any] | None = None,
        timestamp: Timestamp = None,
    ) -> None:
        """Mark a contact inactive. Needs one of fingerprint, email or user_id."""
        self._client._enqueue(
            build_stage_event("inactive", email, user_id, fingerprint, properties, timestamp)
        )


class CustomerAPI:
    """Account billing status: ``outlit.customer.trialing/paid/churned``."""

    def __init__(self, client: Outlit) -> None:
        self._client = client

    def trialing(
        self,
        *,
        customer_id: NumericId | None = None,
        customer_domain: str | None = None,
        stripe_customer_id: NumericId | None = None,
        properties: Mapping[str, Any] | None = None,
        timestamp: Timestamp = None,
    ) -> None:
        """Mark an account trialing. Needs customer_id or customer_domain."""
        self._client._enqueue(
            build_billing_event(
                "trialing", customer_id, customer_domain, stripe_customer_id, properties, timestamp
            )
        )

    def paid(
        self,
        *,
        customer_id: NumericId | None = None,
        customer_domain: str | None = None,
        stripe_customer_id: NumericId | None = None,
        properties: Mapping[str, Any] | None = None,
        timestamp: Timestamp = None,
    ) -> None:
        """Mark an account paying. Needs customer_id or customer_domain."""
        self._client._enqueue(
            build_billing_event(
                "paid", customer_id, customer_domain, stripe_customer_id, properties, timestamp
            )
        )

    def churned(
        self,
        *,
        customer_id: NumericId | None = None,
        customer_domain: str | None = None,
        stripe_customer_id: NumericId | None = None,
        properties: Mapping[str, Any] | None = None,
        timestamp: Timestamp = None,
    ) -> None:
        """Mark an account churned. Needs customer_id or customer_domain."""
        self._client._enqueue(
            build_billing_event(
                "churned", customer_id, customer_domain, stripe_customer_id, properties, timestamp
            )
        )


def _wait_limit(name: str, value: Any) -> float:
    """Seconds a flush or a shutdown may wait: a number (below 0 counts as 0; a huge one or
    infinity, as long as a thread can wait)."""
    if isinstance(value, (bool, str, bytes)):
        raise OptionError(f"{name} must be a number of seconds (or None), got {value!r}")
    try:
        if value != value:  # NaN (compared before any ordering: a Decimal NaN refuses those)
            raise OptionError(f"{name} must be a number of seconds (or None), got {value!r}")
        # Compared before float(): 10**400 has no float.
        if value <= 0:
            return 0.0
        if value >= threading.TIMEOUT_MAX:
            return threading.TIMEOUT_MAX
        return float(value)
    except (TypeError, ValueError, ArithmeticError) as exc:
        if isinstance(exc, OptionError):
            raise
        raise OptionError(f"{name} must be a number of seconds (or None), got {value!r}") from None


def _before_fork() -> None:
    # A worker thread may be preparing its first request right now, which imports modules
    # (HTTPTransport: only that; HttpxTransport: for its whole first request). A fork in the
    # middle of an import leaves the child a module lock owned by a thread it does not have,
    # and its own first send would hang: wait for it.
    for client in list(_live_clients):
        hold = getattr(client._transport, "hold_for_fork", None)
        if hold is not None and client._state == _RUNNING:
            hold(client.options.timeout + 1.0)


def _after_fork_in_parent() -> None:
    for client in list(_live_clients):
        release = getattr(client._transport, "release_after_fork", None)
        if release is not None:
            release()


_before_fork_registered = False
_bound_tracker: Any = None


def _tracker_class() -> type[BoundTracker]:
    # Imported once, not per call: adapters call bind() on every request.
    global _bound_tracker
    if _bound_tracker is None:
        from ._tracker import BoundTracker

        _bound_tracker = BoundTracker
    cls: type[BoundTracker] = _bound_tracker
    return cls


def _register_before_fork() -> None:
    """Register the fork hooks that wait for imports once, after `logging` is imported.

    Fork hooks run newest first, and logging's own hook takes logging's lock, which an httpx
    import in progress needs (httpx creates loggers): ours must run before it, so it must be
    registered after it (the worker module imports logging).
    """
    global _before_fork_registered
    if not _before_fork_registered and hasattr(os, "register_at_fork"):
        _before_fork_registered = True
        os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent)


def _after_fork_in_child() -> None:
    for client in list(_live_clients):
        client._after_fork_in_child()
    if _live_clients:
        # Not Celery's signal here: connecting takes its lock, which a thread of the parent may
        # have held at fork time. The child connects when its client starts (_begin).
        _flush_at_child_exit(connect_celery=False)


class _AfterForkToken:
    """Kept alive by this module: multiprocessing's after-fork registry holds it weakly."""


_AFTER_FORK_TOKEN = _AfterForkToken()
_exit_hooked: dict[str, int] = {}  # library -> the process whose exit finalizers hold ours
_after_fork_hooked: set[str] = set()


def _flush_at_child_exit(connect_celery: bool = True) -> None:
    """Flush at the exit of a multiprocessing, billiard or Celery pool child too.

    Such a child ends with ``os._exit()``, which skips atexit, right after running its
    library's exit finalizers: ours joins them (in any other process they run at exit beside
    our atexit hook, and shutdown() is idempotent). A child made by fork starts by clearing
    the finalizers it inherited and then runs the library's after-fork hooks: one of ours
    registers the finalizer again there. Celery's pool children skip even those, but send
    ``worker_process_shutdown`` first. Called after a fork and when a client starts.
    Nothing is imported that is not loaded yet."""
    import sys

    pid = os.getpid()
    celery_signals = sys.modules.get("celery.signals") if connect_celery else None
    if celery_signals is not None and "celery" not in _after_fork_hooked:
        # Celery's pool processes skip even billiard's finalizers (os._exit() right after
        # this signal, sent in the child): a process that loaded Celery flushes on it.
        _after_fork_hooked.add("celery")
        try:
            celery_signals.worker_process_shutdown.connect(
                _flush_at_celery_child_exit, weak=False, dispatch_uid="outlit-flush"
            )
        except Exception:  # pragma: no cover - an unexpected version: say why events may be lost
            _logger().warning("outlit: could not connect to Celery's worker_process_shutdown")
    for library in ("multiprocessing", "billiard"):
        util = sys.modules.get(f"{library}.util")
        if util is None:
            continue
        try:
            if library not in _after_fork_hooked:
                _after_fork_hooked.add(library)
                util.register_after_fork(_AFTER_FORK_TOKEN, functools.partial(_finalize, util))
            if _exit_hooked.get(library) != pid:
                _exit_hooked[library] = pid
                _finalize(util)
        except Exception:  # pragma: no cover - an unexpected version: atexit remains
            _logger().debug("outlit: no exit hook in %s", library, exc_info=True)


def _flush_at_celery_child_exit(**_signal: Any) -> None:
    # Celery has each pool process killed (PR_SET_PDEATHSIG) when the thread that forked it
    # ends. A process that replaced a recycled one was forked by the pool's supervisor thread,
    # which ends early in a warm shutdown: a flush slower than that (a slow or briefly failing
    # network) was cut short with no word. This process is leaving anyway; let it finish.
    _clear_parent_death_signal()
    _shutdown_all_at_exit()


def _clear_parent_death_signal() -> None:
    import sys

    util = sys.modules.get("billiard.util")
    if util is None or not sys.platform.startswith("linux"):
        return
    try:
        util.set_pdeathsig(0)
    except Exception:  # pragma: no cover - an unexpected billiard: the flush is tried anyway
        _logger().debug("outlit: could not clear the pool process's death signal", exc_info=True)


def _finalize(util: Any, _token: object = None) -> None:
    util.Finalize(None, _shutdown_all_at_exit, exitpriority=10)


def _shutdown_all_at_exit() -> None:
    """Flush and stop every client, all within the longest ``shutdown_timeout`` among them:
    every worker starts sending at once, and each client then waits for what time is left
    (one after another, a network that is down would cost each its full timeout)."""
    clients = list(_live_clients)
    if not clients:
        return
    for client in clients:
        if client._state == _RUNNING and client._worker.alive:
            client._worker.request_flush()
    deadline = time.monotonic() + max(client.options.shutdown_timeout for client in clients)
    for client in clients:
        left = min(client.options.shutdown_timeout, deadline - time.monotonic())
        client._closed_at_exit = client._state != _CLOSED
        try:
            client.shutdown(max(left, 0.0))
        except Exception:  # pragma: no cover - never let exit-time delivery raise
            _logger().debug("outlit: error during exit-time shutdown", exc_info=True)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_shutdown_all_at_exit)

__all__ = ["DEFAULT_FLUSH_TIMEOUT", "CustomerAPI", "Outlit", "UserAPI"]
