"""Settings of the example project: a reports app whose users export reports and upgrade plans.

Everything Outlit needs is in INSTALLED_APPS, MIDDLEWARE and OUTLIT below. By default events go
to the local collector (``outlit dev``, http://127.0.0.1:8787); set OUTLIT_API_HOST and
OUTLIT_PUBLIC_KEY to send them to Outlit.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "outlit_django",
    "reports",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "outlit_django.middleware.OutlitMiddleware",  # after AuthenticationMiddleware
    "django.contrib.messages.middleware.MessageMiddleware",
]

OUTLIT = {
    "PUBLIC_KEY": os.environ.get("OUTLIT_PUBLIC_KEY", "pk_example_local"),
    "API_HOST": os.environ.get("OUTLIT_API_HOST", "http://127.0.0.1:8787"),
    "FLUSH_INTERVAL": float(os.environ.get("OUTLIT_FLUSH_INTERVAL", "10")),
    # Each request's calls carry the signed-in user and their company (see reports/identity.py).
    "IDENTIFY_USER": "reports.identity.identity",
}

ROOT_URLCONF = "exampleproject.urls"
WSGI_APPLICATION = "exampleproject.wsgi.application"

TEMPLATES = [
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
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("EXAMPLE_DB_PATH", str(BASE_DIR / "db.sqlite3")),
    }
}

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    # The SDK logs delivery problems on the "outlit" logger.
    "loggers": {"outlit": {"handlers": ["console"], "level": "INFO"}},
}
