"""Work done after the response, without a task queue: a plain thread.

Code outside a request uses the process-wide client, ``outlit_django.outlit``, and names the
identity itself. The event is delivered by the SDK's background worker like any other, and at the
latest when the process exits.
"""

import threading

from django.contrib.auth import get_user_model

from outlit_django import outlit


def start_usage_snapshot(user_id, plan):
    # Not a daemon: the interpreter waits for it at exit, before the SDK's final flush.
    threading.Thread(
        target=refresh_usage_snapshot, args=(user_id, plan), name="usage-snapshot"
    ).start()


def refresh_usage_snapshot(user_id, plan):
    user = get_user_model().objects.get(pk=user_id)
    seats = get_user_model().objects.filter(email__iendswith=user.email.rsplit("@", 1)[1]).count()
    outlit.track(
        user_id=str(user.pk),
        email=user.email,
        event_name="usage_snapshot_refreshed",
        properties={"plan": plan, "seats": seats},
    )
