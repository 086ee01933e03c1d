"""Who a request is: the identity that ``request.outlit`` fills into calls that name none."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from django.core.exceptions import SynchronousOnlyOperation
from django.db import connections

from outlit._log import get_logger
from outlit._tracker import user_identity

if TYPE_CHECKING:
    from weakref import ref

    from django.http import HttpRequest

logger = get_logger("outlit.django")


def default_identity(request: HttpRequest) -> dict[str, Any]:
    """``user_id`` (the primary key as a string) and ``email`` of ``request.user`` when the
    user is authenticated; ``{}`` otherwise.

    This is what ``"IDENTIFY_USER": True`` uses. A custom identity function can start from it::

        def identity(request):
            return {**default_identity(request), "customer_id": str(request.organization.pk)}
    """
    return user_identity(getattr(request, "user", None))


def through_reference(
    identity: Callable[[HttpRequest], Mapping[str, Any] | None],
) -> Callable[[ref[HttpRequest]], Mapping[str, Any] | None]:
    """``identity`` taking a weak reference to the request: how ``request.outlit`` looks its
    identity up. The tracker holds its request weakly because the request holds the tracker:
    a strong reference would make a cycle, leaving every request that does not track (and its
    META, and its response) to the garbage collector instead of being freed at once."""

    def lookup(request_ref: ref[HttpRequest]) -> Mapping[str, Any] | None:
        request = request_ref()
        if request is None:
            # Only after the request is over and nothing keeps it (a tracker kept by a thread).
            logger.warning(
                "outlit: request.outlit was used after its request was freed, so the request's "
                "identity is unknown; keep the request, or pass the identity to the call"
            )
            return None
        try:
            return identity(request)
        except SynchronousOnlyOperation:
            # Looked up from async code before the user was loaded (an async middleware ahead
            # of the view, an async iterator or async_to_sync() inside a sync view): Django
            # refuses the query in an event loop, so it runs in a thread, waited for here.
            return _in_a_thread(identity, request)

    return lookup


def _in_a_thread(
    identity: Callable[[HttpRequest], Mapping[str, Any] | None], request: HttpRequest
) -> Mapping[str, Any] | None:
    outcome: list[Any] = []

    def look_up() -> None:
        try:
            outcome.append(identity(request))
        except BaseException as exc:  # raised again on the caller's thread
            outcome.append(exc)
        finally:
            connections.close_all()  # this thread's connections end with it

    thread = threading.Thread(target=look_up, name="outlit-identity", daemon=True)
    thread.start()
    thread.join()
    found = outcome[0]
    if isinstance(found, BaseException):
        raise found
    result: Mapping[str, Any] | None = found
    return result
