"""Signals for Flask apps, in Flask's own style (blinker).

The client's three signals are re-exported here so that a Flask app finds them in one place.
Their sender is the :class:`outlit.Outlit` client (``app.extensions["outlit"]``), and they are
sent from the client's background thread: no application or request context is active, so a
receiver must not use ``current_app``, ``g`` or ``request``.

``batch_delivered(client, count, status)``
    The service accepted ``count`` events.
``batch_failed(client, count, status, error, retry_in)``
    A send failed; ``retry_in`` is None when those events will not be sent again.
``events_dropped(client, count, reason, messages)``
    ``count`` events will never be delivered (``reason``: queue_full, rejected, too_large,
    invalid_key, shutdown, unencodable, identity_failed, after_exit).

Sent by the extension, with the app as sender, inside the app context:

``teardown_flushed(app, result)``
    With ``OUTLIT_FLUSH_ON_TEARDOWN``, after the teardown flush of an app context that ended
    with events queued (its own, or earlier ones not yet delivered). ``result`` is the
    :class:`outlit.FlushResult`: false, with ``result.pending`` events left, when the bounded
    wait ran out. A receiver that raises is logged and ignored.

Example::

    from outlit_flask import signals

    @signals.events_dropped.connect
    def count_drops(client, count, reason, **extra):
        statsd.incr("outlit.dropped", count, tags=[f"reason:{reason}"])

    @signals.teardown_flushed.connect_via(app)
    def warn_when_behind(app, result, **extra):
        if not result:
            app.logger.warning("outlit: %d events still queued after the response", result.pending)
"""

from __future__ import annotations

from blinker import Namespace

from outlit.signals import batch_delivered, batch_failed, events_dropped

_signals = Namespace()

teardown_flushed = _signals.signal("outlit-flask.teardown-flushed")

__all__ = ["batch_delivered", "batch_failed", "events_dropped", "teardown_flushed"]
