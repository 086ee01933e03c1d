"""``request.outlit`` through Django's test client and async client: which identity a call gets,
under WSGI and ASGI, in sync and async views."""

from __future__ import annotations

import gc
import logging
import weakref
from typing import Any, ClassVar

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.contrib.auth.models import User
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.wsgi import WSGIHandler
from django.test import AsyncClient, Client, TestCase, override_settings
from djtestproject import BASE_OUTLIT, identity

from outlit import BoundTracker, MockTransport
from outlit_django import outlit

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "outlit_django.middleware.OutlitMiddleware",
]


async def force_login(client: AsyncClient, user: User) -> None:
    if hasattr(client, "aforce_login"):  # Django 5.0+
        await client.aforce_login(user)
    else:
        await sync_to_async(client.force_login)(user)


class OutlitTestCase(TestCase):
    """Each test gets its own in-memory transport; ``sent()`` flushes and returns the events.
    Logins send no identify here (test_django_login covers that)."""

    outlit_settings: ClassVar[dict[str, Any]] = {}

    def setUp(self) -> None:
        super().setUp()
        self.transport = MockTransport()
        override = override_settings(
            OUTLIT={
                **BASE_OUTLIT,
                "TRANSPORT": self.transport,
                "IDENTIFY_ON_LOGIN": False,
                **self.outlit_settings,
            }
        )
        override.enable()
        self.addCleanup(override.disable)
        self.jane = User.objects.create_user("jane", "jane@acme.com", "pw")

    def sent(self) -> list[dict[str, Any]]:
        assert outlit.flush(timeout=5)
        return self.transport.events

    def call(self, client: Client, method: str = "track", path: str = "/call/", **kwargs: Any):
        if method == "track":
            kwargs.setdefault("event_name", "report_exported")
        return client.post(
            path, {"method": method, "kwargs": kwargs}, content_type="application/json"
        )

    async def acall(
        self, client: AsyncClient, method: str = "track", path: str = "/acall/", **kwargs: Any
    ):
        if method == "track":
            kwargs.setdefault("event_name", "report_exported")
        return await client.post(
            path, {"method": method, "kwargs": kwargs}, content_type="application/json"
        )


class SignedInUserTests(OutlitTestCase):
    def test_a_call_without_identity_gets_the_signed_in_users_id_and_email(self):
        client = Client()
        client.force_login(self.jane)
        response = self.call(client, properties={"format": "pdf"})
        assert response.status_code == 200
        (event,) = self.sent()
        assert event["userId"] == str(self.jane.pk)
        assert event["email"] == "jane@acme.com"
        assert event["url"] == "server://jane@acme.com"
        assert event["properties"] == {"format": "pdf"}

    def test_explicit_identity_wins_and_is_not_mixed_with_the_users(self):
        client = Client()
        client.force_login(self.jane)
        self.call(client, email="someone-else@example.com")
        (event,) = self.sent()
        assert event["email"] == "someone-else@example.com"
        assert "userId" not in event

    def test_a_user_without_email_is_identified_by_primary_key_alone(self):
        nomail = User.objects.create_user("nomail", "", "pw")
        client = Client()
        client.force_login(nomail)
        self.call(client)
        (event,) = self.sent()
        assert event["userId"] == str(nomail.pk)
        assert "email" not in event

    def test_stage_calls_get_the_user_and_identify_too(self):
        client = Client()
        client.force_login(self.jane)
        assert (
            self.call(client, "user.activate", properties={"flow": "onboarding"}).status_code == 200
        )
        assert self.call(client, "user.identify", traits={"name": "Jane"}).status_code == 200
        stage, identify = self.sent()
        assert stage["stage"] == "activated"
        assert stage["properties"] == {
            "flow": "onboarding",
            "__fingerprint": None,
            "__email": "jane@acme.com",
            "__userId": str(self.jane.pk),
        }
        assert identify["type"] == "identify"
        assert identify["userId"] == str(self.jane.pk)
        assert identify["traits"] == {"name": "Jane"}

    def test_billing_needs_a_customer_which_the_user_alone_does_not_give(self):
        client = Client()
        client.force_login(self.jane)
        response = self.call(client, "customer.paid", properties={"plan": "pro"})
        assert response.status_code == 400
        error = response.json()["error"]
        assert "customer_id" in error and "customer_domain" in error
        assert self.sent() == []

    def test_the_tracker_has_every_client_method(self):
        from django.test import RequestFactory

        from outlit_django.middleware import OutlitMiddleware

        seen: list[Any] = []
        middleware = OutlitMiddleware(lambda request: seen.append(request.outlit) or "response")
        assert middleware(RequestFactory().get("/")) == "response"
        (tracker,) = seen
        assert isinstance(tracker, BoundTracker)
        for name in ("track", "identify", "flush", "aflush"):
            assert callable(getattr(tracker, name))
        for name in ("identify", "activate", "engaged", "inactive"):
            assert callable(getattr(tracker.user, name))
        for name in ("trialing", "paid", "churned"):
            assert callable(getattr(tracker.customer, name))
        assert tracker.queue_size == 0


class RequestMemoryTests(OutlitTestCase):
    def test_a_request_that_tracked_is_freed_without_the_garbage_collector(self):
        from django.http import HttpResponse
        from django.test import RequestFactory

        from outlit_django.middleware import OutlitMiddleware

        def view(request: Any) -> HttpResponse:
            request.outlit.track(event_name="report_exported")
            return HttpResponse("ok")

        middleware = OutlitMiddleware(view)
        gc.collect()
        gc.disable()  # a request left in a reference cycle would outlive its last reference
        try:
            request = RequestFactory().get("/")
            request.user = self.jane
            alive = weakref.ref(request)
            assert middleware(request).status_code == 200
            del request
            assert alive() is None, "the request's tracker kept it in a reference cycle"
        finally:
            gc.enable()
        (event,) = self.sent()
        assert (event["userId"], event["email"]) == (str(self.jane.pk), "jane@acme.com")

    def assert_freed_without_tracking(self, middleware: Any, run: Any) -> None:
        from django.test import RequestFactory

        gc.collect()
        gc.disable()
        try:
            request = RequestFactory().get("/")
            request.user = self.jane
            alive = weakref.ref(request)
            assert run(middleware, request).status_code == 200
            del request
            assert alive() is None, "the unused tracker kept the request in a reference cycle"
        finally:
            gc.enable()

    def test_a_request_that_never_tracked_is_freed_without_the_garbage_collector(self):
        from django.http import HttpResponse

        from outlit_django.middleware import OutlitMiddleware

        def view(request: Any) -> HttpResponse:
            assert isinstance(request.outlit, BoundTracker)
            return HttpResponse("ok")

        self.assert_freed_without_tracking(OutlitMiddleware(view), lambda mw, r: mw(r))

    def test_an_async_request_that_never_tracked_is_freed_without_the_garbage_collector(self):
        import asyncio

        from django.http import HttpResponse

        from outlit_django.middleware import OutlitMiddleware

        async def view(request: Any) -> HttpResponse:
            assert isinstance(request.outlit, BoundTracker)
            return HttpResponse("ok")

        middleware = OutlitMiddleware(view)
        middleware.check_lifespan = False  # no OutlitLifespan warning: not what this is about
        self.assert_freed_without_tracking(middleware, lambda mw, r: asyncio.run(mw(r)))

    def test_a_stand_in_request_without_weak_references_still_works(self):
        # A test's SimpleNamespace takes no weak reference: the tracker holds it as it is.
        from types import SimpleNamespace

        from django.http import HttpResponse

        from outlit_django.middleware import OutlitMiddleware

        def view(request: Any) -> HttpResponse:
            request.outlit.track(event_name="stand_in")
            return HttpResponse("ok")

        OutlitMiddleware(view)(SimpleNamespace(user=self.jane, path="/"))
        (event,) = self.sent()
        assert event["userId"] == str(self.jane.pk)

    def test_a_tracker_used_after_its_request_was_freed_says_why_it_has_no_identity(self):
        from django.http import HttpResponse
        from django.test import RequestFactory

        from outlit import InvalidEventError
        from outlit_django.middleware import OutlitMiddleware

        kept: list[BoundTracker] = []

        def view(request: Any) -> HttpResponse:
            kept.append(request.outlit)  # as a thread that outlives the request might
            return HttpResponse("ok")

        request = RequestFactory().get("/")
        request.user = self.jane
        OutlitMiddleware(view)(request)
        del request
        gc.collect()
        (tracker,) = kept
        with (
            self.assertLogs("outlit.django", logging.WARNING) as logs,
            self.assertRaises(InvalidEventError),
        ):
            tracker.track(event_name="too_late")
        assert "used after its request was freed" in logs.output[0]
        tracker.track(event_name="too_late", email="jane@acme.com")  # explicit identity works
        assert [e["eventName"] for e in self.sent()] == ["too_late"]


class ViewKindTests(TestCase):
    def test_async_views_are_told_apart_and_unhashable_views_still_work(self):
        from outlit_django.middleware import _is_async_view

        async def async_view(request: Any) -> None:
            return None

        def sync_view(request: Any) -> None:
            return None

        class Unhashable:
            __hash__ = None

            async def __call__(self, request: Any) -> None:
                return None

        for _ in range(2):  # the second answer comes from the cache
            assert _is_async_view(async_view) is True
            assert _is_async_view(sync_view) is False
        assert _is_async_view(Unhashable()) is iscoroutinefunction(Unhashable())


class AnonymousRequestTests(OutlitTestCase):
    def test_an_anonymous_call_without_identity_raises_the_cores_value_error(self):
        response = self.call(Client())
        assert response.status_code == 400
        assert (
            "email, user_id, fingerprint, customer_id or customer_domain"
            in (response.json()["error"])
        )
        assert self.sent() == []

    def test_an_anonymous_call_with_identity_is_sent_as_given(self):
        assert self.call(Client(), fingerprint="device-1").status_code == 200
        (event,) = self.sent()
        assert event["fingerprint"] == "device-1"
        assert event["url"] == "server://device-1"

    def test_a_request_that_tracks_nothing_never_looks_the_identity_up(self):
        with override_settings(
            OUTLIT={
                **BASE_OUTLIT,
                "TRANSPORT": self.transport,
                "IDENTIFY_USER": "djtestproject.identity.organization_identity",
            }
        ):
            client = Client()
            client.force_login(self.jane)
            identity.calls.clear()
            assert client.get("/quiet/").content == b"quiet"
            assert identity.calls == []
            self.call(client)
            self.call(client)
            assert len(identity.calls) == 2  # once per request that tracked

    def test_the_process_wide_client_works_in_a_view(self):
        assert Client().get("/process-wide/").status_code == 200
        (event,) = self.sent()
        assert event["eventName"] == "process_wide_used"
        assert event["email"] == "ops@example.com"


class IdentifyUserOffTests(OutlitTestCase):
    outlit_settings: ClassVar[dict[str, Any]] = {"IDENTIFY_USER": False}

    def test_the_signed_in_user_is_not_filled_in(self):
        client = Client()
        client.force_login(self.jane)
        assert self.call(client).status_code == 400
        assert self.call(client, user_id="explicit").status_code == 200
        (event,) = self.sent()
        assert event["userId"] == "explicit"
        assert "email" not in event


class IdentityFunctionTests(OutlitTestCase):
    outlit_settings: ClassVar[dict[str, Any]] = {
        "IDENTIFY_USER": "djtestproject.identity.organization_identity"
    }

    def test_the_function_adds_the_organisation_as_customer(self):
        client = Client(headers={"X-Organization": "org_42"})
        client.force_login(self.jane)
        assert self.call(client).status_code == 200
        assert self.call(client, "customer.paid", properties={"plan": "pro"}).status_code == 200
        track, billing = self.sent()
        assert (track["userId"], track["email"], track["customerId"]) == (
            str(self.jane.pk),
            "jane@acme.com",
            "org_42",
        )
        assert billing["status"] == "paid"
        assert billing["customerId"] == "org_42"
        assert "email" not in billing  # billing calls take the customer fields only

    def test_a_callable_works_as_well_as_a_dotted_path(self):
        def tenant(request):
            return {"customer_domain": "acme.com"}

        with override_settings(
            OUTLIT={**BASE_OUTLIT, "TRANSPORT": self.transport, "IDENTIFY_USER": tenant}
        ):
            assert self.call(Client()).status_code == 200
        (event,) = self.sent()
        assert event["customerDomain"] == "acme.com"
        assert "userId" not in event


class BrokenIdentityFunctionTests(OutlitTestCase):
    outlit_settings: ClassVar[dict[str, Any]] = {
        "IDENTIFY_USER": "djtestproject.identity.broken_identity"
    }

    def test_a_failing_identity_function_is_logged_and_never_a_server_error(self):
        client = Client()
        client.force_login(self.jane)
        with self.assertNoLogs("outlit", logging.ERROR):
            assert (
                self.call(client, email="explicit@acme.com").status_code == 200
            )  # never consulted
        with self.assertLogs("outlit", logging.ERROR) as logs:
            response = self.call(client)
        # Not even the core's ValueError: the call is dropped and counted, the view goes on.
        assert response.status_code == 200, response.content
        assert "the identity function raised" in logs.output[0]
        (event,) = self.sent()
        assert event["email"] == "explicit@acme.com"
        assert outlit.stats.dropped_by_reason == {"identity_failed": 1}


class AsyncTests(OutlitTestCase):
    async def test_async_view_under_asgi_gets_the_signed_in_user(self):
        client = AsyncClient()
        await force_login(client, self.jane)
        response = await client.get("/aidentity/")
        assert response.json() == {"user_id": str(self.jane.pk), "email": "jane@acme.com"}
        assert (await self.acall(client)).status_code == 200
        (event,) = await self._asent()
        assert event["userId"] == str(self.jane.pk)

    async def test_sync_view_under_asgi_gets_the_signed_in_user(self):
        client = AsyncClient()
        await force_login(client, self.jane)
        response = await client.get("/identity/")
        assert response.json() == {"user_id": str(self.jane.pk), "email": "jane@acme.com"}

    async def test_async_view_under_asgi_anonymous_raises_the_cores_error(self):
        response = await self.acall(AsyncClient())
        assert response.status_code == 400
        assert (await AsyncClient().get("/aidentity/")).json() == {}

    def test_async_view_under_wsgi_gets_the_signed_in_user(self):
        client = Client()
        client.force_login(self.jane)
        response = client.get("/aidentity/")
        assert response.json() == {"user_id": str(self.jane.pk), "email": "jane@acme.com"}

    async def _asent(self) -> list[dict[str, Any]]:
        assert await outlit.aflush(timeout=5)
        return self.transport.events


class AsyncViewWithDatabaseIdentityTests(OutlitTestCase):
    # Django refuses a query inside the event loop: an identity function that queries the
    # database is looked up before the async view, in sync code.
    outlit_settings: ClassVar[dict[str, Any]] = {
        "IDENTIFY_USER": "djtestproject.identity.database_identity"
    }

    async def test_under_asgi(self):
        client = AsyncClient()
        await force_login(client, self.jane)
        with self.assertNoLogs("outlit", logging.ERROR):
            assert (await self.acall(client)).status_code == 200
        assert await outlit.aflush(timeout=5)
        (event,) = self.transport.events
        assert (event["userId"], event["customerId"]) == (str(self.jane.pk), "org_jane")

    def test_under_wsgi(self):
        client = Client()
        client.force_login(self.jane)
        with self.assertNoLogs("outlit", logging.ERROR):
            assert self.call(client, path="/acall/").status_code == 200
        (event,) = self.sent()
        assert (event["userId"], event["customerId"]) == (str(self.jane.pk), "org_jane")


class NoThreadHopTests(TestCase):
    """Django adapts a middleware that cannot run in the handler's mode with a thread hop per
    request (and logs it at DEBUG when settings.DEBUG). OutlitMiddleware must never need one."""

    def load(self, handler_class: type, is_async: bool) -> tuple[Any, list[str]]:
        middleware = [*MIDDLEWARE, "djtestproject.middleware.SyncOnlyMiddleware"]
        with (
            override_settings(DEBUG=True, MIDDLEWARE=middleware),
            self.assertLogs("django.request", logging.DEBUG) as logs,
        ):
            logging.getLogger("django.request").debug("loading")  # assertLogs needs one record
            handler = handler_class()
        return handler, [line for line in logs.output if "adapted" in line]

    def assert_view_hook_native(self, handler: Any, is_async: bool) -> None:
        ours = [
            hook
            for hook in handler._view_middleware
            if type(getattr(hook, "__self__", None)).__name__ == "OutlitMiddleware"
        ]
        assert len(ours) == 1, handler._view_middleware  # a wrapped hook would not be a method
        assert iscoroutinefunction(ours[0]) is is_async

    def test_under_asgi(self):
        handler, adapted = self.load(ASGIHandler, is_async=True)
        assert any("SyncOnlyMiddleware" in line for line in adapted), adapted  # the control
        assert not [line for line in adapted if "OutlitMiddleware" in line], adapted
        self.assert_view_hook_native(handler, is_async=True)

    def test_under_wsgi(self):
        handler, adapted = self.load(WSGIHandler, is_async=False)
        assert not [line for line in adapted if "OutlitMiddleware" in line], adapted
        self.assert_view_hook_native(handler, is_async=False)


_USER_STORE_DOWN = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "djtestproject.middleware.UserStoreDownMiddleware",
    "outlit_django.middleware.OutlitMiddleware",
]


@override_settings(MIDDLEWARE=_USER_STORE_DOWN)
class UserStoreDownTests(OutlitTestCase):
    """OutlitMiddleware loads request.user ahead of async views; when that fails, a view that
    never reads the user must still answer (only a view that needs the user meets the error)."""

    def test_an_async_view_under_wsgi_that_never_tracks_answers(self):
        response = Client(raise_request_exception=True).get("/aquiet/")
        assert (response.status_code, response.content) == (200, b"quiet")

    async def test_an_async_view_under_asgi_that_never_tracks_answers(self):
        response = await AsyncClient(raise_request_exception=True).get("/aquiet/")
        assert (response.status_code, response.content) == (200, b"quiet")


@override_settings(
    MIDDLEWARE=[
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "djtestproject.middleware.ApiTokenMiddleware",
        "outlit_django.middleware.OutlitMiddleware",
        "djtestproject.middleware.TrackFirstMiddleware",
    ]
)
class AsyncCodeTests(TestCase):
    """Async views and async code under ASGI, beside an app's own middleware."""

    def setUp(self) -> None:
        super().setUp()
        self.transport = MockTransport()
        override = override_settings(
            OUTLIT={**BASE_OUTLIT, "TRANSPORT": self.transport, "IDENTIFY_ON_LOGIN": False}
        )
        override.enable()
        self.addCleanup(override.disable)
        self.jane = User.objects.create_user("jane", "jane@acme.com", "pw")
        self.admin = User.objects.create_user("admin", "admin@acme.com", "pw")

    async def sent(self) -> list[tuple[str, str]]:
        assert await outlit.aflush(timeout=5)
        return [(event["eventName"], event.get("userId")) for event in self.transport.events]

    async def acall(self, client: AsyncClient, path: str, **headers: str) -> Any:
        body = {"method": "track", "kwargs": {"event_name": "report_exported"}}
        return await client.post(path, body, content_type="application/json", headers=headers)

    async def test_a_user_another_middleware_set_is_the_one_the_view_sees(self):
        # Loading the session's user ahead of an async view replaced request.user with it: an
        # API-token request became anonymous, or the session's user.
        token = {"Authorization": "Token jane"}
        assert (await AsyncClient().get("/awhoami/", headers=token)).content == b"jane"
        client = AsyncClient()
        await force_login(client, self.admin)
        assert (await client.get("/awhoami/", headers=token)).content == b"jane"
        assert (await client.get("/awhoami/")).content == b"admin"
        response = await self.acall(client, "/acall/")
        assert response.status_code == 200, response.content
        assert await self.sent() == [("report_exported", str(self.admin.pk))]

    async def test_an_async_middleware_that_tracks_before_the_view_costs_the_view_nothing(self):
        # Its call looks the identity up in the event loop, before the user is loaded: Django
        # refuses the query, and that call is dropped (saying what to do). The failure was
        # kept for the whole request, so the view's own calls were dropped as well.
        client = AsyncClient()
        await force_login(client, self.jane)
        with self.assertLogs("outlit", logging.ERROR) as logs:
            response = await self.acall(client, "/acall/", **{"X-Track-First": "1"})
        assert response.status_code == 200, response.content
        assert "before request.user was loaded" in "\n".join(logs.output)
        assert await self.sent() == [("report_exported", str(self.jane.pk))]
        assert outlit.stats.dropped_by_reason == {"identity_failed": 1}

    async def test_async_code_in_a_sync_view_gets_the_user_the_view_loaded(self):
        client = AsyncClient()
        await force_login(client, self.jane)
        streamed = await client.get("/stream/?load=1")
        assert b"".join([part async for part in streamed.streaming_content]) == b"row\n"
        assert await self.sent() == [("row_streamed", str(self.jane.pk))]
        # Not loaded: the call is dropped, and the log says how to load it.
        with self.assertLogs("outlit", logging.ERROR) as logs:
            streamed = await client.get("/stream/")
            assert b"".join([part async for part in streamed.streaming_content]) == b"row\n"
        assert "await request.auser()" in "\n".join(logs.output)
        assert outlit.stats.dropped_by_reason == {"identity_failed": 1}
