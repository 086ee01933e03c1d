"""Under Mangum, the AWS Lambda adapter: each invocation's events are at the collector when the
handler returns, since Lambda freezes the process right after."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi import FastAPI

from outlit_fastapi import Outlit, OutlitMiddleware

mangum = pytest.importorskip("mangum", reason="Mangum is not installed (pip install mangum)")


def _api_gateway_event(path: str) -> dict[str, Any]:
    """An HTTP API (payload 2.0) event, as API Gateway hands it to the function."""
    return {
        "version": "2.0",
        "routeKey": f"POST {path}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"host": "api.example.com", "content-type": "application/json"},
        "requestContext": {
            "http": {
                "method": "POST",
                "path": path,
                "sourceIp": "192.0.2.1",
                "protocol": "HTTP/1.1",
            },
            "stage": "$default",
            "domainName": "api.example.com",
        },
        "isBase64Encoded": False,
        "body": "",
    }


class _LambdaContext:
    function_name = "export"


def _app(outlit: Outlit, *, middleware: bool) -> FastAPI:
    app = FastAPI(lifespan=outlit.lifespan)
    if middleware:
        app.add_middleware(OutlitMiddleware, outlit=outlit)

    @app.post("/export/{n}")
    async def export(n: int) -> dict[str, int]:
        outlit.track(event_name="lambda_export", user_id="u1", properties={"n": n})
        return {"n": n}

    return app


@pytest.mark.parametrize(
    ("lifespan", "flush_after_response", "middleware"),
    [
        ("off", True, True),  # the recommended setup: one client across warm invocations
        ("auto", False, False),  # Mangum runs the lifespan around every invocation
    ],
)
def test_each_invocations_events_are_delivered_before_the_handler_returns(
    make_outlit, collector, lifespan, flush_after_response, middleware
):
    outlit = make_outlit(
        api_host=collector.url, flush_interval=300, flush_after_response=flush_after_response
    )
    # Mangum runs every invocation on the thread's current event loop (one per Lambda
    # process); give it one that the test closes.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        handler = mangum.Mangum(_app(outlit, middleware=middleware), lifespan=lifespan)
        for n in range(3):
            response = handler(_api_gateway_event(f"/export/{n}"), _LambdaContext())
            assert response["statusCode"] == 200
            assert collector.stats.events_stored == n + 1
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    stored = collector.events()
    assert sorted(e["properties"]["n"] for e in stored) == [0, 1, 2]
