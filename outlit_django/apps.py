"""The Django app: registers the system checks and connects the signal receivers."""

from __future__ import annotations

from django.apps import AppConfig


class OutlitDjangoConfig(AppConfig):
    name = "outlit_django"
    verbose_name = "Outlit"

    def ready(self) -> None:
        # Nothing here creates the client: it is built on first use (see outlit_django.client).
        from . import checks, receivers

        checks.register_checks()
        receivers.connect()
