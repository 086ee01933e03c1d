"""Outlit for Flask: a Flask extension over the :mod:`outlit` client.

    from outlit_flask import Outlit

    outlit = Outlit()
    outlit.init_app(app)          # app.config["OUTLIT_PUBLIC_KEY"] = "pk_..."

    @app.post("/export")
    def export():
        g.outlit.track(event_name="report_exported")   # as the logged-in user

Supports Flask 2.3 and later, and Flask-Login 0.6 for the logged-in user.
"""

from __future__ import annotations

try:
    import flask as _flask  # noqa: F401  (only to fail early with the right advice)
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "outlit_flask needs Flask: install it with pip install 'outlit[flask]'"
    ) from exc

from . import signals
from ._extension import Outlit
from ._identity import IdentityLoader, current_user_identity

__all__ = ["IdentityLoader", "Outlit", "current_user_identity", "signals"]
