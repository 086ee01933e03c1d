"""Blinker signals sent by the background worker, so applications can count and alert.

Every signal's sender is the :class:`~outlit.Outlit` client. Receivers run on the worker
thread: keep them quick, and do not call ``flush()`` from one. An exception in a receiver is
logged and otherwise ignored.

``batch_delivered(sender, count, status)``
    The service accepted ``count`` events (HTTP ``status``, 200 or 207).
``batch_failed(sender, count, status, error, retry_in)``
    A request failed. ``status`` is None for network errors. ``retry_in`` is the seconds until
    the same events are sent again (0 when a 400 or 413 makes the client send them again at
    once, in halves, to find the bad ones), or None when they will not be (bad key, rejected
    event).
``events_dropped(sender, count, reason, messages)``
    ``count`` events will never be delivered. ``reason`` is one of ``"queue_full"``,
    ``"rejected"`` (the service refused them; ``messages`` says why), ``"too_large"``,
    ``"invalid_key"``, ``"shutdown"`` (still queued when the exit-time wait ran out),
    ``"unencodable"`` (a value the JSON encoder could not handle; not expected to happen) or
    ``"identity_failed"`` (a request-bound tracker's call that named no identity, after its
    identity function failed) or ``"after_exit"`` (a call made after the exit-time shutdown).

Example::

    from outlit import signals

    @signals.events_dropped.connect
    def count_drops(client, count, reason, **extra):
        metrics.increment("outlit.dropped", count, tags={"reason": reason})
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

batch_delivered = _signals.signal("outlit.batch-delivered")
batch_failed = _signals.signal("outlit.batch-failed")
events_dropped = _signals.signal("outlit.events-dropped")

__all__ = ["batch_delivered", "batch_failed", "events_dropped"]
