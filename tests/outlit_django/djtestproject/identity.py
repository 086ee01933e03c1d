"""Identity functions named by dotted path in the tests' settings."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from outlit_django import default_identity

calls: list[HttpRequest] = []


def organization_identity(request: HttpRequest) -> dict[str, Any]:
    """A multi-tenant app's: the user, and the organisation named by a header."""
    calls.append(request)
    found = default_identity(request)
    organization = request.headers.get("X-Organization")
    if organization:
        found["customer_id"] = organization
    return found


def broken_identity(request: HttpRequest) -> dict[str, Any]:
    raise RuntimeError("the identity function failed")


def user_object_identity(request: HttpRequest) -> Any:
    """A common slip: the user object itself instead of its identity fields."""
    return request.user


def make_transport() -> Any:
    from outlit import MockTransport

    transport = MockTransport()
    made.append(transport)
    return transport


made: list[Any] = []


async def async_identity(request: HttpRequest) -> dict[str, Any]:
    """Refused: request.outlit calls the identity function synchronously."""
    return {}


def database_identity(request: HttpRequest) -> dict[str, Any]:
    """Queries the database, as an app's own function often does (the user's organisation)."""
    from django.contrib.auth.models import User

    user = User.objects.get(pk=request.user.pk)
    return {"user_id": str(user.pk), "customer_id": f"org_{user.username}"}
