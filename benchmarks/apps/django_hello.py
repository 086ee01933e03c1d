"""Hello-world Django projects in one module, for measuring what outlit_django costs a request.

``application_plain`` is Django alone: one view, no middleware. ``application_outlit`` is the
same view with ``outlit_django`` installed, ``OutlitMiddleware`` and one ``request.outlit.track``
per request, its identity filled in by an ``IDENTIFY_USER`` function (the path a real view takes).
``application_untracked`` has ``OutlitMiddleware`` but its view does not track: what outlit
costs the requests that track nothing. The ASGI twins are ``asgi_plain`` and ``asgi_outlit`` (the latter wrapped in ``OutlitLifespan``,
as the documentation wires it). For reference, ``application_middleware`` is the plain view
behind one do-nothing middleware and no outlit: what any middleware costs Django itself.
These are Django with nothing else. ``application_project_plain``, ``_outlit`` and ``_untracked``
are the same three in the project ``django-admin startproject`` writes (its apps and seven
middleware, ``AuthenticationMiddleware`` among them, which the documented wiring puts
``OutlitMiddleware`` after), serving anonymous requests that touch neither the session nor
the database.
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


# The settings `django-admin startproject` writes (Django 5.2's template; 4.2's also lists the
# debug context processor, which renders nothing here), for the ``application_project_*``
# variants. tests/benchmarks/test_django_apps.py checks the apps and middleware against the
# installed Django's template.
PROJECT_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]
PROJECT_MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
PROJECT_TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    }
]

# Module attribute -> the variant configure() sets up for it.
WSGI_VARIANTS = {
    "application_plain": "plain",
    "application_outlit": "outlit",
    "application_untracked": "untracked",
    "application_middleware": "middleware",
    "application_project_plain": "project-plain",
    "application_project_outlit": "project-outlit",
    "application_project_untracked": "project-untracked",
}


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
    """Configure Django for ``"plain"``, ``"outlit"``, ``"untracked"`` or ``"middleware"``, or
    the first three in the startproject project (``"project-plain"`` and so on), once per
    process."""
    global _configured
    if _configured == variant:
        return
    if _configured is not None:
        raise RuntimeError(
            f"this process already serves the {_configured!r} variant; "
            "Django's settings cannot change: start another process"
        )
    from django.conf import settings

    requested = variant
    project = variant.startswith("project-")
    if project:
        variant = variant.removeprefix("project-")
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
    if project:
        # What `django-admin startproject` writes (its apps and middleware are the same from
        # Django 4.2 to 6.0), where the documented wiring puts OutlitMiddleware: after
        # AuthenticationMiddleware. The view serves anonymous requests and touches neither
        # the session nor the database (in memory, so that nothing could reach the disk).
        options["INSTALLED_APPS"] = [*PROJECT_APPS, *options["INSTALLED_APPS"]]
        options["MIDDLEWARE"] = [*PROJECT_MIDDLEWARE, *options["MIDDLEWARE"]]
        options.update(
            DATABASES={
                "default": {
                    "ENGINE": "django.db.backends.sqlite3",
                    "NAME": ":memory:",
                }
            },
            TEMPLATES=PROJECT_TEMPLATES,
            STATIC_URL="static/",
            LANGUAGE_CODE="en-us",
            TIME_ZONE="UTC",
            USE_I18N=True,
            DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        )
    if with_outlit:
        options["OUTLIT"] = {
            "PUBLIC_KEY": os.environ.get("OUTLIT_PUBLIC_KEY", "pk_bench"),
            "API_HOST": os.environ.get("OUTLIT_API_HOST", "http://127.0.0.1:8787"),
            "IDENTIFY_USER": f"{__name__}.bench_identity",
        }
    settings.configure(**options)
    _configured = requested


def __getattr__(name: str) -> Any:
    # Looked up by the server (`module:name`); each name configures its variant on first use.
    application: Any
    if name in WSGI_VARIANTS:
        configure(WSGI_VARIANTS[name])
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
