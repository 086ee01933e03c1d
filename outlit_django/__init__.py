"""Outlit for Django: a reusable app with a request-bound tracker, signal-driven delivery,
system checks and a ``manage.py outlit`` command.

    INSTALLED_APPS = [..., "outlit_django"]
    MIDDLEWARE = [..., "django.contrib.auth.middleware.AuthenticationMiddleware",
                  "outlit_django.middleware.OutlitMiddleware"]
    OUTLIT = {"PUBLIC_KEY": "pk_..."}

    def export(request):
        request.outlit.track(event_name="report_exported")   # the signed-in user's identity

    from outlit_django import outlit                         # the process-wide client
    outlit.customer.paid(customer_domain="acme.com")
"""

from __future__ import annotations

from .client import outlit
from .identity import default_identity

__all__ = ["default_identity", "outlit"]
