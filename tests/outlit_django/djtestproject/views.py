"""Views driven by the test: ``/call/`` runs one ``request.outlit`` method named in the JSON
body, e.g. ``{"method": "customer.paid", "kwargs": {"properties": {"plan": "pro"}}}``."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import auth
from django.contrib.auth import authenticate, login, logout
from django.http import HttpRequest, HttpResponse, JsonResponse

from outlit_django import outlit


def _run(request: HttpRequest) -> JsonResponse:
    spec = json.loads(request.body or b"{}")
    target: Any = request.outlit  # type: ignore[attr-defined]
    for part in spec.get("method", "track").split("."):
        target = getattr(target, part)
    try:
        target(**spec.get("kwargs", {}))
    except ValueError as exc:  # the core's InvalidEventError: a programmer error, shown here
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse({"ok": True})


def call(request: HttpRequest) -> JsonResponse:
    return _run(request)


async def acall(request: HttpRequest) -> JsonResponse:
    return _run(request)


def identity(request: HttpRequest) -> JsonResponse:
    return JsonResponse(request.outlit.identity)  # type: ignore[attr-defined]


async def aidentity(request: HttpRequest) -> JsonResponse:
    return JsonResponse(request.outlit.identity)  # type: ignore[attr-defined]


def process_wide(request: HttpRequest) -> JsonResponse:
    outlit.track(email="ops@example.com", event_name="process_wide_used")
    return JsonResponse({"ok": True})


def login_view(request: HttpRequest) -> HttpResponse:
    user = authenticate(
        request, username=request.POST["username"], password=request.POST["password"]
    )
    if user is None:
        return HttpResponse(status=401)
    if request.POST.get("logout"):
        _ = request.outlit.identity  # type: ignore[attr-defined]  # looked up before the login
    login(request, user)
    if request.POST.get("track"):
        request.outlit.track(event_name="signed_in")  # type: ignore[attr-defined]
    if request.POST.get("logout"):
        logged_in = request.outlit.identity  # type: ignore[attr-defined]
        logout(request)
        after = request.outlit.identity  # type: ignore[attr-defined]
        return JsonResponse({"logged_in": logged_in, "after": after})
    return HttpResponse("signed in")


async def alogin_view(request: HttpRequest) -> HttpResponse:
    from asgiref.sync import sync_to_async

    user = await sync_to_async(authenticate)(
        request, username=request.POST["username"], password=request.POST["password"]
    )
    if user is None:
        return HttpResponse(status=401)
    await auth.alogin(request, user)  # Django 5.0+
    if request.POST.get("track"):
        request.outlit.track(event_name="signed_in")  # type: ignore[attr-defined]
    return HttpResponse("signed in")


def quiet(request: HttpRequest) -> HttpResponse:
    """Tracks nothing: the identity must not even be looked up."""
    return HttpResponse("quiet")


async def aquiet(request: HttpRequest) -> HttpResponse:
    """An async view that neither tracks nor reads request.user."""
    return HttpResponse("quiet")


async def whoami(request: HttpRequest) -> HttpResponse:
    """The user the view sees, as an async view reads it once the middleware have run."""
    return HttpResponse(request.user.get_username() or "anonymous")


def stream(request: HttpRequest) -> Any:
    """A sync view streaming from an async iterator (Django's advice under ASGI) that tracks;
    with ``?load=1`` it loads the user first, as the README advises."""
    from django.http import StreamingHttpResponse

    if request.GET.get("load"):
        _ = request.user.is_authenticated

    async def rows() -> Any:
        request.outlit.track(event_name="row_streamed")  # type: ignore[attr-defined]
        yield "row\n"

    return StreamingHttpResponse(rows())
