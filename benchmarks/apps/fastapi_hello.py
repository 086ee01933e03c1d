"""Hello-world FastAPI apps for measuring what ``outlit_fastapi`` costs a request.

``app_plain`` answers ``GET /`` with ``{"hello": "world"}``. ``app_outlit`` does the same with
``Depends(outlit)`` and one ``tracker.track`` per request whose identity the integration fills
in from an ``identify`` function (the path a real route takes), plus ``outlit.lifespan`` (so
uvicorn delivers what is queued on shutdown). Everything else is identical, so the difference
in requests per second between the two is the integration's cost. The client batches in the
background as in production: default flush interval and batch size, no flush per request.

Two more for reference: ``app_middleware`` tracks through ``OutlitMiddleware`` and
``request.state.outlit`` instead of the dependency, and ``app_empty_depends`` has a dependency
that does nothing and no outlit at all: what any ``Depends`` costs FastAPI itself. ``app_middleware_untracked`` has
``OutlitMiddleware`` and a route that does not track: what outlit costs the requests that track
nothing.

    uvicorn benchmarks.apps.fastapi_hello:app_plain  --port 8001 --no-access-log
    uvicorn benchmarks.apps.fastapi_hello:app_outlit --port 8002 --no-access-log

Run from the repository root. Events go to ``OUTLIT_API_HOST``, by default the local collector
on ``http://127.0.0.1:8787`` (``outlit dev``): never the real service. ``OUTLIT_PUBLIC_KEY``
defaults to ``pk_bench``. Importing this module starts no thread and sends nothing: the
client's worker starts on the first tracked event.
"""

from __future__ import annotations

import os
from typing import Annotated

from fastapi import Depends, FastAPI, Request

from outlit_fastapi import BoundTracker, Outlit, OutlitMiddleware


def identify(request: Request) -> dict[str, str]:
    # Stands in for an app's session or token lookup, kept trivial so that only the
    # integration is measured.
    return {"user_id": "bench-user"}


outlit = Outlit(
    public_key=os.environ.get("OUTLIT_PUBLIC_KEY", "pk_bench"),
    api_host=os.environ.get("OUTLIT_API_HOST", "http://127.0.0.1:8787"),
    identify=identify,
)

app_plain = FastAPI()
app_outlit = FastAPI(lifespan=outlit.lifespan)


@app_plain.get("/")
async def hello_plain() -> dict[str, str]:
    return {"hello": "world"}


@app_outlit.get("/")
async def hello_outlit(tracker: Annotated[BoundTracker, Depends(outlit)]) -> dict[str, str]:
    tracker.track(event_name="hello_served")
    return {"hello": "world"}


app_middleware = FastAPI(lifespan=outlit.lifespan)
app_middleware.add_middleware(OutlitMiddleware, outlit=outlit)


@app_middleware.get("/")
async def hello_middleware(request: Request) -> dict[str, str]:
    request.state.outlit.track(event_name="hello_served")
    return {"hello": "world"}


app_middleware_untracked = FastAPI(lifespan=outlit.lifespan)
app_middleware_untracked.add_middleware(OutlitMiddleware, outlit=outlit)


@app_middleware_untracked.get("/")
async def hello_middleware_untracked() -> dict[str, str]:
    return {"hello": "world"}


async def nothing() -> None:
    return None


app_empty_depends = FastAPI()


@app_empty_depends.get("/")
async def hello_empty_depends(_: Annotated[None, Depends(nothing)]) -> dict[str, str]:
    return {"hello": "world"}
