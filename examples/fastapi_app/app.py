"""A small FastAPI app that sends Outlit events: run it under uvicorn, watch them arrive in the
local collector. See README.md beside this file.

Configuration comes from the environment: OUTLIT_PUBLIC_KEY, OUTLIT_API_HOST, and for this
example OUTLIT_FLUSH_INTERVAL (seconds) and OUTLIT_FLUSH_AFTER_RESPONSE=1 (serverless mode).
"""

from __future__ import annotations

import os
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel
from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    BaseUser,
)
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection

from outlit_fastapi import BoundTracker, Outlit

outlit = Outlit(
    flush_interval=float(os.environ.get("OUTLIT_FLUSH_INTERVAL", "10")),
    flush_after_response=os.environ.get("OUTLIT_FLUSH_AFTER_RESPONSE") == "1",
)
#: The request's tracker, typed for editors: `tracker: Tracker` in a route's parameters.
Tracker = Annotated[BoundTracker, Depends(outlit)]


class DemoUser(BaseUser):
    def __init__(self, user_id: str, email: str) -> None:
        self.id = user_id
        self.email = email

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.email


class DemoTokenAuth(AuthenticationBackend):
    """DEMO ONLY: trusts ``Authorization: Bearer <user id>:<email>`` as it comes. Use your real
    authentication; Outlit reads whatever user it puts on ``request.user``."""

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        scheme, _, token = conn.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or ":" not in token:
            return None
        user_id, email = token.split(":", 1)
        return AuthCredentials(["authenticated"]), DemoUser(user_id, email)


app = FastAPI(
    title="Outlit FastAPI example",
    lifespan=outlit.lifespan,
    middleware=[Middleware(AuthenticationMiddleware, backend=DemoTokenAuth())],
)


async def signed_in(request: Request) -> DemoUser:
    if not request.user.is_authenticated:
        raise HTTPException(status_code=401, detail="sign in first")
    user: DemoUser = request.user
    return user


User = Annotated[DemoUser, Depends(signed_in)]


class Upgrade(BaseModel):
    customer_domain: str
    plan: str
    amount: float


@app.post("/reports/{report_id}/export")
async def export_report(
    report_id: str, user: User, tracker: Tracker, format: str = "pdf"
) -> dict[str, str]:
    # No identity given: the signed-in user's id and email are filled in.
    tracker.track(
        event_name="report_exported", properties={"reportId": report_id, "format": format}
    )
    return {"report": report_id, "format": format}


@app.post("/onboarding/complete")
def complete_onboarding(user: User, tracker: Tracker) -> dict[str, str]:
    # A sync route: FastAPI runs it in its thread pool; tracking only enqueues either way.
    tracker.identify(traits={"onboarded": True})
    tracker.user.activate(properties={"flow": "onboarding"})
    return {"activated": user.id}


@app.post("/billing/upgrade")
async def upgrade(body: Upgrade, user: User, tracker: Tracker) -> dict[str, str]:
    # Account-level events name the account; the user's identity is not used for them.
    tracker.customer.paid(
        customer_domain=body.customer_domain, properties={"plan": body.plan, "amount": body.amount}
    )
    tracker.track(event_name="subscription_upgraded", properties={"toPlan": body.plan})
    return {"plan": body.plan}


@app.get("/healthz")
async def healthz() -> dict[str, object]:
    return {"status": "ok", "queued": outlit.queue_size}
