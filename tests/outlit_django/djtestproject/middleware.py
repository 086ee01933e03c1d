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


class ApiTokenMiddleware:
    """A project's API-token authentication: ``Authorization: Token <username>`` sets
    ``request.user`` to that user, a concrete object (no session involved)."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        header = request.headers.get("Authorization", "")
        if header.startswith("Token "):
            from django.contrib.auth.models import User

            request.user = User.objects.get(username=header.removeprefix("Token "))
        return self.get_response(request)


class TrackFirstMiddleware:
    """An async-only middleware after OutlitMiddleware that tracks before the view runs (for a
    request with ``X-Track-First``), as an audit middleware would."""

    sync_capable = False
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        from asgiref.sync import markcoroutinefunction

        self.get_response = get_response
        markcoroutinefunction(self)

    async def __call__(self, request: Any) -> Any:
        if "X-Track-First" in request.headers:
            request.outlit.track(event_name="request_audited")
        return await self.get_response(request)
