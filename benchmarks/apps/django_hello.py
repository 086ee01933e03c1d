"""Hello-world Django projects in one module, for measuring what outlit_django costs a request.

``application_plain`` is Django alone: one view, no middleware. ``application_outlit`` is the
same view with ``outlit_django`` installed, ``OutlitMiddleware`` and one ``request.outlit.track``
per request, its identity filled in by an ``IDENTIFY_USER`` function (the path a real view takes).
``application_untracked`` has ``OutlitMiddleware`` but its view does not track: what outlit
costs the requests that track nothing. The ASGI twins are ``asgi_plain`` and ``asgi_outlit`` (the latter wrapped in ``OutlitLifespan``,
as the documentation wires it). For reference, ``application_middleware`` is the plain view
behind one do-nothing middleware and no outlit: what any middleware costs Django itself.
Serve each with the same server and load generator, side by side::

    gunicorn -w 1 -b 127.0.0.1:8001 benchmarks.apps.django_hello:application_plain
    OUTLIT_API_HOST=http://127.0.0.1:8787 \\
        gunicorn -w 1 -b 127.0.0.1:8002 benchmarks.apps.django_hello:application_outlit

and under ASGI::

    uvicorn --port 8003 benchmarks.apps.django_hello:asgi_plain
    uvicorn --port 8004 benchmarks.apps.django_hello:asgi_outlit

Run from the repository root. Django's settings are per process, so a process serves one
variant: each name configures Django when it is first looked up, and asking a process for a
second variant raises ``RuntimeError``. Events go to ``OUTLIT_API_HOST`` (default: the local
collector of ``outlit dev`` on 127.0.0.1:8787, never the real service) with
``OUTLIT_PUBLIC_KEY`` (default ``pk_bench``). The client batches in the background as in
production: default flush interval and batch size, no flush per request.
"""

from __future__ import annotations

import os
import sys
from typing import Any

GREETING = "Hello, World!"

_configured: str | None = None


def hello_plain(request: Any) -> Any:
    from django.http import HttpResponse

    return HttpResponse(GREETING, content_type="text/plain")


def hello_outlit(request: Any) -> Any:
    from django.http import HttpResponse

    request.outlit.track(event_name="hello_viewed", properties={"path": "/"})
    return HttpResponse(GREETING, content_type="text/plain")


class NothingMiddleware:
    """Passes every request on: the cost of one middleware layer, without outlit."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        return self.get_response(request)


def bench_identity(request: Any) -> dict[str, str]:
    return {"user_id": "bench-user", "customer_domain": "bench.example"}


# ROOT_URLCONF may name any importable module with `urlpatterns`: these two tiny modules are
# built from this one so that the whole project stays in a single file.
def _urlconf(name: str, view: Any) -> str:
    import types

    from django.urls import path

    module = types.ModuleType(f"{__name__}.{name}")
    module.urlpatterns = [path("", view)]  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    return module.__name__


def configure(variant: str) -> None:
    """Configure Django for ``"plain"``, ``"outlit"``, ``"untracked"`` or ``"middleware"`` (once
    per process)."""
    global _configured
    if _configured == variant:
        return
    if _configured is not None:
        raise RuntimeError(
            f"this process already serves the {_configured!r} variant; "
            "Django's settings cannot change: start another process"
        )
    from django.conf import settings

    with_outlit = variant in ("outlit", "untracked")
    options: dict[str, Any] = {
        "DEBUG": False,
        "SECRET_KEY": "benchmark-only",
        "ALLOWED_HOSTS": ["*"],
        "USE_TZ": True,
        "DATABASES": {},
        "INSTALLED_APPS": ["outlit_django"] if with_outlit else [],
        "MIDDLEWARE": (
            ["outlit_django.middleware.OutlitMiddleware"]
            if with_outlit
            else [f"{__name__}.NothingMiddleware"]
            if variant == "middleware"
            else []
        ),
        "LOGGING_CONFIG": None,
        "ROOT_URLCONF": _urlconf(
            f"urls_{variant}", hello_outlit if variant == "outlit" else hello_plain
        ),
    }
    if with_outlit:
        options["OUTLIT"] = {
            "PUBLIC_KEY": os.environ.get("OUTLIT_PUBLIC_KEY", "pk_bench"),
            "API_HOST": os.environ.get("OUTLIT_API_HOST", "http://127.0.0.1:8787"),
            "IDENTIFY_USER": f"{__name__}.bench_identity",
        }
    settings.configure(**options)
    _configured = variant


def __getattr__(name: str) -> Any:
    # Looked up by the server (`module:name`); each name configures its variant on first use.
    application: Any
    if name in (
        "application_plain",
        "application_outlit",
        "application_untracked",
        "application_middleware",
    ):
        configure(name.rsplit("_", 1)[1])
        from django.core.wsgi import get_wsgi_application

        application = get_wsgi_application()
    elif name in ("asgi_plain", "asgi_outlit"):
        variant = name.rsplit("_", 1)[1]
        configure(variant)
        from django.core.asgi import get_asgi_application

        application = get_asgi_application()
        if variant == "outlit":
            # As the documentation wires it: flush at lifespan shutdown (part of the cost).
            from outlit_django.asgi import OutlitLifespan

            application = OutlitLifespan(application)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = application
    return application
