"""Who a request is: the identity that ``request.outlit`` fills into calls that name none."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from outlit._tracker import user_identity

if TYPE_CHECKING:
    from django.http import HttpRequest


def default_identity(request: HttpRequest) -> dict[str, Any]:
    """``user_id`` (the primary key as a string) and ``email`` of ``request.user`` when the
    user is authenticated; ``{}`` otherwise.

    This is what ``"IDENTIFY_USER": True`` uses. A custom identity function can start from it::

        def identity(request):
            return {**default_identity(request), "customer_id": str(request.organization.pk)}
    """
    return user_identity(getattr(request, "user", None))
