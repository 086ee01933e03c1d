"""Who a request is: the identity that ``request.outlit`` fills into calls that name none."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

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
        return identity(request)

    return lookup
