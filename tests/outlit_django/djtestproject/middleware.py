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


class UserStoreDownMiddleware:
    """Sets ``request.user`` (and ``auser``) as AuthenticationMiddleware does, with the user
    store down: loading the user raises."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        from asgiref.sync import iscoroutinefunction, markcoroutinefunction

        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        from django.db import DatabaseError
        from django.utils.functional import SimpleLazyObject

        def load() -> Any:
            raise DatabaseError("user store down")

        async def aload() -> Any:
            return load()

        request.user = SimpleLazyObject(load)
        request.auser = aload
        return self.get_response(request)
