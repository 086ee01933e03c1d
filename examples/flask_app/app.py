"""A small Flask app using outlit_flask with Flask-Login: see README.md beside this file.

OUTLIT_PUBLIC_KEY=pk_... flask --app app run
OUTLIT_PUBLIC_KEY=pk_... gunicorn -w 2 'app:create_app()'
OUTLIT_PUBLIC_KEY=pk_... python serve_waitress.py
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from flask import Flask, g, jsonify, request
from flask_login import (
    LoginManager,
    UserMixin,
    current_user,
    login_required,
    login_user,
    logout_user,
)

from outlit_flask import Outlit, current_user_identity

# Created once, bound to each app in create_app(): the application factory pattern.
outlit = Outlit()
login_manager = LoginManager()


@dataclass
class User(UserMixin):
    """A stand-in for your user model (UserMixin gives Flask-Login what it needs)."""

    id: int
    email: str


# A stand-in for your database: the same users in every worker process.
USERS = {
    user.email: user
    for user in (
        User(1, "ada@acme.example"),
        User(2, "grace@acme.example"),
        User(3, "alan@initech.example"),
        User(4, "katherine@globex.example"),
    )
}


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    return next((user for user in USERS.values() if user.get_id() == user_id), None)


@outlit.identity_loader
def outlit_identity() -> dict[str, Any] | None:
    """Who g.outlit tracks: the logged-in user, with their company's domain as the customer."""
    identity = current_user_identity()
    if not identity:
        return None
    return {**identity, "customer_domain": current_user.email.rpartition("@")[2]}


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=os.environ.get("SECRET_KEY", "dev-only-secret"),
        # OUTLIT_PUBLIC_KEY and OUTLIT_API_HOST come from the environment when not set here.
    )
    # FLASK_OUTLIT_FLUSH_INTERVAL=5 in the environment sets app.config["OUTLIT_FLUSH_INTERVAL"].
    app.config.from_prefixed_env()
    app.config.update(config or {})

    login_manager.init_app(app)
    outlit.init_app(app)

    @app.get("/")
    def index() -> Any:
        who = current_user.email if current_user.is_authenticated else None
        return jsonify(user=who)

    @app.post("/login")
    def login() -> Any:
        user = USERS.get(request.form.get("email", "").strip().lower())
        if user is None:
            return jsonify(error="unknown email"), 404
        # outlit_flask sends an identify for the login: Outlit infers the signed_up stage.
        login_user(user)
        return jsonify(user=user.email)

    @app.post("/logout")
    def logout() -> Any:
        logout_user()
        return jsonify(user=None)

    @app.post("/reports/<int:report_id>/export")
    @login_required
    def export_report(report_id: int) -> Any:
        export_format = request.form.get("format", "pdf")
        # ... build the export ...
        g.outlit.track(
            event_name="report_exported",
            properties={"report_id": report_id, "format": export_format},
        )
        return jsonify(exported=report_id, format=export_format)

    @app.post("/onboarding/done")
    @login_required
    def onboarding_done() -> Any:
        g.outlit.user.activate(properties={"flow": "onboarding"})
        return jsonify(activated=True)

    @app.post("/webhooks/billing")
    def billing_webhook() -> Any:
        # No logged-in user here (verify the webhook's signature in a real app): name the
        # account explicitly, with the extension's app-wide methods.
        payload = request.get_json(force=True)
        outlit.customer.paid(
            customer_domain=payload["domain"], properties={"plan": payload.get("plan")}
        )
        return jsonify(ok=True)

    return app
