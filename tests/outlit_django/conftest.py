"""Django settings for these tests only, a test database made the way Django's test runner
makes it, a fresh in-memory transport per test, and a real collector on loopback.

Settings are configured when this file is imported (before the test modules import Django
models). Tests change ``settings.OUTLIT`` with Django's own ``override_settings``, which is
also what resets the process-wide client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import django
import pytest
from django.conf import settings
from django.test import override_settings
from django.test.utils import (
    setup_databases,
    setup_test_environment,
    teardown_databases,
    teardown_test_environment,
)
from djtestproject import BASE_OUTLIT

from outlit import MockTransport
from outlit._collector.server import Collector

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "outlit_django.middleware.OutlitMiddleware",
]

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="outlit-django-tests",
        ALLOWED_HOSTS=["testserver"],
        USE_TZ=True,
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "outlit_django",
        ],
        MIDDLEWARE=MIDDLEWARE,
        ROOT_URLCONF="djtestproject.urls",
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        # Never the network by accident: tests that send over HTTP point API_HOST at a collector.
        OUTLIT={**BASE_OUTLIT, "TRANSPORT": MockTransport()},
    )
    django.setup()


@pytest.fixture(scope="session", autouse=True)
def _django_test_database() -> Iterator[None]:
    setup_test_environment()
    old_config = setup_databases(verbosity=0, interactive=False)
    try:
        yield
    finally:
        teardown_databases(old_config, verbosity=0)
        teardown_test_environment()


@pytest.fixture(autouse=True)
def _isolated_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The developer's own OUTLIT_* variables must not leak into what the tests check, and no
    # test inherits another's process-wide client.
    from outlit_django.client import reset_client

    monkeypatch.delenv("OUTLIT_PUBLIC_KEY", raising=False)
    monkeypatch.delenv("OUTLIT_API_HOST", raising=False)
    reset_client()
    yield
    reset_client(timeout=2)


ConfigureOutlit = Callable[..., MockTransport]


@pytest.fixture
def configure_outlit() -> Iterator[ConfigureOutlit]:
    """``configure_outlit(**OUTLIT keys)``: override ``settings.OUTLIT`` (over ``BASE_OUTLIT``
    and a fresh ``MockTransport``) for the rest of the test; returns the transport."""
    overrides: list[override_settings] = []

    def configure(**values: Any) -> MockTransport:
        transport = MockTransport()
        override = override_settings(OUTLIT={**BASE_OUTLIT, "TRANSPORT": transport, **values})
        override.enable()
        overrides.append(override)
        return transport

    yield configure
    for override in reversed(overrides):
        override.disable()


@pytest.fixture
def collector() -> Iterator[Collector]:
    with Collector(host="127.0.0.1", port=0, memory=True) as running:
        yield running
