"""Who the current request's user is, for ``g.outlit``: Flask-Login's ``current_user`` when the
app has a ``LoginManager``, or the app's own ``@outlit.identity_loader``."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from flask import current_app, has_request_context

from outlit._tracker import user_identity

#: A function of no arguments returning the current user's identity (email, user_id, fingerprint,
#: customer_id, customer_domain), or None when there is none. It reads the request the Flask
#: way (``current_user``, ``g``, ``request``).
IdentityLoader = Callable[[], Mapping[str, Any] | None]


def current_user_identity() -> dict[str, Any]:
    """Flask-Login's logged-in user as ``{"user_id": str(user.id), "email": ...}``.

    ``{}`` when nobody is logged in, outside a request, or when the app has no ``LoginManager``.
    An identity loader can build on it::

        @outlit.identity_loader
        def identity():
            return {**current_user_identity(), "customer_id": current_user.team_id}
    """
    if not has_request_context() or getattr(current_app, "login_manager", None) is None:
        return {}
    return user_identity(_flask_login_user()._get_current_object())


@functools.cache
def _flask_login_user() -> Any:
    # Imported on first use (Flask-Login is optional) and kept: an import statement run on
    # every call costs more than the rest of the lookup.
    from flask_login import current_user  # type: ignore[import-untyped, unused-ignore]

    return current_user
