"""Fixtures for the Flask extension's tests: apps wired to an in-memory transport, a Flask-Login
user store, and a real collector on loopback for what crosses the wire."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask_login import LoginManager, UserMixin

from outlit import MockTransport
from outlit._collector.server import Collector

PUBLIC_KEY = "pk_test_flask_1234567"


class User(UserMixin):
    def __init__(self, id: int, email: str | None) -> None:
        self.id = id
        self.email = email


USERS = {
    "1": User(1, "ada@example.com"),
    "2": User(2, "grace@example.com"),
    "3": User(3, None),
}


@pytest.fixture(autouse=True)
def _no_outlit_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # The developer's own OUTLIT_* variables must not leak into what the tests check.
    monkeypatch.delenv("OUTLIT_PUBLIC_KEY", raising=False)
    monkeypatch.delenv("OUTLIT_API_HOST", raising=False)


@pytest.fixture
def transport() -> MockTransport:
    return MockTransport()


MakeApp = Callable[..., Flask]


@pytest.fixture
def make_app(transport: MockTransport) -> Iterator[MakeApp]:
    """``make_app(**config)``: a Flask app set up for Outlit but not yet initialised; every
    client the test creates is shut down afterwards."""
    apps: list[Flask] = []

    def make(*, name: str | None = None, login: bool = False, **config: Any) -> Flask:
        app = Flask(name or f"app{len(apps)}")
        app.config.update(
            SECRET_KEY="test",
            OUTLIT_PUBLIC_KEY=PUBLIC_KEY,
            OUTLIT_TRANSPORT=transport,
            # Only flush() and the teardown flush send: tests see exactly what they caused.
            OUTLIT_FLUSH_INTERVAL=60.0,
        )
        app.config.update(config)
        if login:
            manager = LoginManager(app)
            manager.user_loader(USERS.get)
        apps.append(app)
        return app

    yield make
    for app in apps:
        client = app.extensions.get("outlit")
        if client is not None:
            client.shutdown(timeout=0.5)


@pytest.fixture
def users() -> dict[str, User]:
    return USERS


@pytest.fixture
def public_key() -> str:
    return PUBLIC_KEY


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector(host="127.0.0.1", port=0, memory=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()
