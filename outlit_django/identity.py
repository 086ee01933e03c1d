"""Who a request is: the identity that ``request.outlit`` fills into calls that name none."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from django.core.exceptions import SynchronousOnlyOperation

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
        except SynchronousOnlyOperation as exc:
            # Looked up from async code before the user was loaded (an async middleware ahead
            # of the view, async code inside a sync view): Django refuses the query in an
            # event loop. This call is dropped; the middleware looks the identity up again
            # once it has loaded the user, before the view (see middleware._process_view).
            request.__dict__[EARLY_LOOKUP] = True
            raise SynchronousOnlyOperation(
                "request.outlit was used from async code before request.user was loaded, and "
                "Django refuses to load it there: load it first (await request.auser(), or "
                "request.user.is_authenticated in sync code) or pass the identity to the call"
            ) from exc

    return lookup


#: Set on a request whose identity was looked up too early (see through_reference).
EARLY_LOOKUP = "_outlit_early_lookup"
