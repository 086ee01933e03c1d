"""Middleware for the tests: one that can only run synchronously (Django must adapt it under ASGI,
a control for the test that OutlitMiddleware needs no such adaptation), and a subclass of
Django's AuthenticationMiddleware."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth.middleware import AuthenticationMiddleware


class SyncOnlyMiddleware:
    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        return self.get_response(request)


class TokenAuthenticationMiddleware(AuthenticationMiddleware):
    """A project's own authentication middleware: it sets ``request.user`` like Django's."""
