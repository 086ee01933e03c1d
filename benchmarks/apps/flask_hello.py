"""Hello-world Flask apps for measuring what outlit_flask costs a request.

``app_plain`` is Flask alone. ``app_outlit`` is the same view with the extension set up and one
``g.outlit.track`` per request, its identity filled in by an identity loader (the path a real
view takes). ``app_untracked`` has the extension set up but its view does not track: what outlit
costs the requests that track nothing. ``app_g_attribute`` is the plain view reading one attribute
of ``g``, without outlit: what the read of ``g.outlit`` costs Flask itself. Serve each with the same server and load generator, side by side::

    gunicorn -w 1 -b 127.0.0.1:8001 benchmarks.apps.flask_hello:app_plain
    OUTLIT_API_HOST=http://127.0.0.1:8787 \\
        gunicorn -w 1 -b 127.0.0.1:8002 benchmarks.apps.flask_hello:app_outlit

Run from the repository root. Events go to ``OUTLIT_API_HOST`` (default: the local collector
of ``outlit dev`` on 127.0.0.1:8787, never the real service) with ``OUTLIT_PUBLIC_KEY``
(default ``pk_bench``). The client batches in the background as in production: the default
flush interval and batch size, no flush per request.
"""

from __future__ import annotations

import os

from flask import Flask, g
from flask.ctx import _AppCtxGlobals

from outlit_flask import Outlit

GREETING = "Hello, World!"


def create_plain_app() -> Flask:
    app = Flask("flask_hello_plain")

    @app.get("/")
    def hello() -> str:
        return GREETING

    return app


def create_outlit_app(track: bool = True) -> Flask:
    app = Flask("flask_hello_outlit")
    app.config["OUTLIT_PUBLIC_KEY"] = os.environ.get("OUTLIT_PUBLIC_KEY", "pk_bench")
    app.config["OUTLIT_API_HOST"] = os.environ.get("OUTLIT_API_HOST", "http://127.0.0.1:8787")
    outlit = Outlit(app)

    @outlit.identity_loader
    def identity() -> dict[str, str]:
        return {"user_id": "bench-user", "customer_domain": "bench.example"}

    @app.get("/")
    def hello() -> str:
        if track:
            g.outlit.track(event_name="hello_viewed", properties={"path": "/"})
        return GREETING

    return app


def create_g_attribute_app() -> Flask:
    """The plain view, reading one attribute of ``g`` that ``g``'s class provides (as
    ``g.outlit`` is provided), without outlit: what one read of ``g`` costs Flask itself (the
    context-local proxy), the reference for the extension's cost."""

    class Globals(_AppCtxGlobals):
        greeting = GREETING

    app = Flask("flask_hello_g")
    app.app_ctx_globals_class = Globals

    @app.get("/")
    def hello() -> str:
        greeting: str = g.greeting
        return greeting

    return app


app_plain = create_plain_app()
app_outlit = create_outlit_app()
app_untracked = create_outlit_app(track=False)
app_g_attribute = create_g_attribute_app()
