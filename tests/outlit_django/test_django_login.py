"""Identify on login: Django's ``user_logged_in`` sends one ``identify`` per login."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import django
import pytest
from django.contrib.auth.models import User
from django.test import AsyncClient, Client, TestCase, override_settings
from djtestproject import BASE_OUTLIT

from outlit import MockTransport
from outlit_django import outlit


class LoginTestCase(TestCase):
    outlit_settings: ClassVar[dict[str, Any]] = {}

    def setUp(self) -> None:
        super().setUp()
        self.transport = MockTransport()
        override = override_settings(
            OUTLIT={**BASE_OUTLIT, "TRANSPORT": self.transport, **self.outlit_settings}
        )
        override.enable()
        self.addCleanup(override.disable)
        self.jane = User.objects.create_user("jane", "jane@acme.com", "secret-pw")

    def sent(self) -> list[dict[str, Any]]:
        assert outlit.flush(timeout=5)
        return self.transport.events

    def sign_in(self, client: Client | None = None, password: str = "secret-pw") -> int:
        client = client or Client()
        return client.post("/login/", {"username": "jane", "password": password}).status_code


class IdentifyOnLoginTests(LoginTestCase):
    def test_a_login_sends_one_identify_with_the_users_id_and_email(self):
        assert self.sign_in() == 200
        (event,) = self.sent()
        assert event["type"] == "identify"
        assert (event["userId"], event["email"]) == (str(self.jane.pk), "jane@acme.com")
        assert event["url"] == "server://jane@acme.com"

    def test_a_failed_login_sends_nothing(self):
        assert self.sign_in(password="wrong") == 401
        assert self.sent() == []

    def test_test_client_logins_send_it_too(self):
        assert Client().login(username="jane", password="secret-pw")
        Client().force_login(self.jane)
        assert [e["type"] for e in self.sent()] == ["identify", "identify"]

    def test_a_user_without_email_is_identified_by_id(self):
        nomail = User.objects.create_user("nomail", "", "pw")
        Client().force_login(nomail)
        (event,) = self.sent()
        assert event["userId"] == str(nomail.pk)
        assert "email" not in event

    @pytest.mark.skipif(django.VERSION < (5, 0), reason="django.contrib.auth.alogin is 5.0+")
    async def test_an_async_login_sends_it_too(self):
        client = AsyncClient()
        response = await client.post("/alogin/", {"username": "jane", "password": "secret-pw"})
        assert response.status_code == 200
        assert await outlit.aflush(timeout=5)
        (event,) = self.transport.events
        assert (event["type"], event["userId"]) == ("identify", str(self.jane.pk))


class TrackerAfterLoginTests(LoginTestCase):
    """request.outlit follows a login or logout in the middle of its request, identify on login
    or not, with the default identity or a function of the app's."""

    outlit_settings: ClassVar[dict[str, Any]] = {
        "IDENTIFY_ON_LOGIN": False,
        "IDENTIFY_USER": "djtestproject.identity.organization_identity",
    }

    def test_a_view_that_logs_in_then_tracks_sends_the_new_user(self):
        response = Client().post(
            "/login/", {"username": "jane", "password": "secret-pw", "track": "1"}
        )
        assert response.status_code == 200
        (event,) = self.sent()
        assert (event["eventName"], event["userId"]) == ("signed_in", str(self.jane.pk))

    def test_a_logout_forgets_the_user(self):
        response = Client().post(
            "/login/", {"username": "jane", "password": "secret-pw", "logout": "1"}
        )
        identities = response.json()
        assert identities["logged_in"]["user_id"] == str(self.jane.pk)
        assert "user_id" not in identities["after"]

    @pytest.mark.skipif(django.VERSION < (5, 0), reason="django.contrib.auth.alogin is 5.0+")
    async def test_an_async_view_that_logs_in_then_tracks_sends_the_new_user(self):
        # Its identity was looked up before the view ran (the function may query the
        # database, which Django refuses in the event loop): the login looks it up again.
        for client in (AsyncClient(), Client()):  # under ASGI, and under WSGI
            data = {"username": "jane", "password": "secret-pw", "track": "1"}
            if isinstance(client, AsyncClient):
                response = await client.post("/alogin/", data)
            else:
                from asgiref.sync import sync_to_async

                response = await sync_to_async(client.post)("/alogin/", data)
            assert response.status_code == 200
        assert await outlit.aflush(timeout=5)
        assert [(e["eventName"], e["userId"]) for e in self.transport.events] == [
            ("signed_in", str(self.jane.pk))
        ] * 2


class IdentifyOnLoginOffTests(LoginTestCase):
    outlit_settings: ClassVar[dict[str, Any]] = {"IDENTIFY_ON_LOGIN": False}

    def test_no_identify_is_sent(self):
        assert self.sign_in() == 200
        assert self.sent() == []


class IdentifyOnLoginWithIdentityFunctionTests(LoginTestCase):
    outlit_settings: ClassVar[dict[str, Any]] = {
        "IDENTIFY_USER": "djtestproject.identity.organization_identity"
    }

    def test_the_identify_carries_the_customer_from_the_identity_function(self):
        client = Client(headers={"X-Organization": "org_7"})
        assert self.sign_in(client) == 200
        (event,) = self.sent()
        assert (event["userId"], event["email"], event["customerId"]) == (
            str(self.jane.pk),
            "jane@acme.com",
            "org_7",
        )


class IdentifyOnLoginWithBrokenIdentityFunctionTests(LoginTestCase):
    outlit_settings: ClassVar[dict[str, Any]] = {
        "IDENTIFY_USER": "djtestproject.identity.broken_identity"
    }

    def test_the_login_succeeds_and_the_users_fields_are_still_sent(self):
        with self.assertLogs("outlit", logging.ERROR) as logs:
            assert self.sign_in() == 200
        assert "identity function raised during login" in logs.output[0]
        (event,) = self.sent()
        assert (event["userId"], event["email"]) == (str(self.jane.pk), "jane@acme.com")


class IdentifyOnLoginWithAnIdentityFunctionReturningNoMappingTests(LoginTestCase):
    outlit_settings: ClassVar[dict[str, Any]] = {
        "IDENTIFY_USER": "djtestproject.identity.user_object_identity"
    }

    def test_the_login_succeeds_and_the_users_fields_are_still_sent(self):
        with self.assertLogs("outlit", logging.ERROR) as logs:
            assert self.sign_in() == 200
        assert logs.output == [
            "ERROR:outlit:outlit: the identity function returned a User, not a mapping of "
            "identity fields (email, user_id, fingerprint, customer_id, customer_domain); the "
            "login's identify is sent with the user's own fields"
        ]
        (event,) = self.sent()
        assert (event["userId"], event["email"]) == (str(self.jane.pk), "jane@acme.com")


class IdentifyOnLoginWhenTheClientCannotBeBuiltTests(LoginTestCase):
    outlit_settings: ClassVar[dict[str, Any]] = {"MAX_QUEUE_SIZE": 0}

    def test_the_login_still_succeeds_and_the_failure_is_logged(self):
        with self.assertLogs("outlit", logging.ERROR) as logs:
            # The test client's login() skips the middleware, which would refuse this setting.
            assert Client().login(username="jane", password="secret-pw")
        assert "could not send identify for the login" in logs.output[0]
