"""The Django app: registers the system checks and connects the signal receivers."""

from __future__ import annotations

from django.apps import AppConfig


class OutlitDjangoConfig(AppConfig):
    name = "outlit_django"
    verbose_name = "Outlit"

    def ready(self) -> None:
        # Nothing here creates the client: it is built on first use (see outlit_django.client).
        # What building it imports is loaded now, with the rest of the project, rather than by
        # the first request.
        from outlit import _transport, _worker  # noqa: F401

        from . import checks, receivers

        checks.register_checks()
        receivers.connect()
