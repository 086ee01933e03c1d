"""Fixtures for outlit_fastapi's tests: a real collector on 127.0.0.1, in-memory transports, and
integrations whose clients are always shut down after the test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    BaseUser,
    SimpleUser,
)
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection

from outlit import MockTransport, RetryPolicy
from outlit._collector.server import Collector
from outlit_fastapi import Outlit

#: Short backoffs keep failure paths quick; the retry policy itself is the core's business.
FAST_RETRY = RetryPolicy(initial_backoff=0.02, max_backoff=0.1)


class AppUser(BaseUser):
    """An app's own user model behind Starlette's authentication, with an id and an email."""

    def __init__(self, id: int, email: str) -> None:
        self.id = id
        self.email = email

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.email


class HeaderAuth(AuthenticationBackend):
    """Test-only authentication: ``X-User: 42:jane@acme.com`` logs in user 42,
    ``X-Simple-User: jane`` logs in Starlette's SimpleUser("jane")."""

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        if "x-simple-user" in conn.headers:
            return AuthCredentials(["authenticated"]), SimpleUser(conn.headers["x-simple-user"])
        if "x-user" not in conn.headers:
            return None
        key, email = conn.headers["x-user"].split(":", 1)
        return AuthCredentials(["authenticated"]), AppUser(int(key), email)


@pytest.fixture
def collector() -> Iterator[Collector]:
    with Collector(host="127.0.0.1", port=0, memory=True) as running:
        yield running


@pytest.fixture
def transport() -> MockTransport:
    return MockTransport()


@pytest.fixture
def make_outlit(transport: MockTransport) -> Iterator[Callable[..., Outlit]]:
    """Build ``outlit_fastapi.Outlit`` objects (MockTransport unless api_host or transport is
    given); whatever client each holds at the end of the test is shut down."""
    made: list[Outlit] = []

    def make(**kwargs: Any) -> Outlit:
        kwargs.setdefault("public_key", "pk_test_fastapi")
        kwargs.setdefault("retry", FAST_RETRY)
        if "api_host" not in kwargs:
            kwargs.setdefault("transport", transport)
        integration = Outlit(**kwargs)
        made.append(integration)
        return integration

    yield make
    for integration in made:
        integration.client.shutdown(timeout=2)


@pytest.fixture
def auth_middleware() -> list[Middleware]:
    """Starlette's AuthenticationMiddleware with the test-only :class:`HeaderAuth` backend."""
    return [Middleware(AuthenticationMiddleware, backend=HeaderAuth())]
