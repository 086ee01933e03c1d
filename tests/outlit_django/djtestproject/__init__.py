"""A tiny Django project for the tests: views that call ``request.outlit`` as the test asks,
identity functions, and the values every test's ``settings.OUTLIT`` starts from."""

from __future__ import annotations

from typing import Any

PUBLIC_KEY = "pk_test_django_1234567"

#: Only flush() and the request_finished flush send, so a test sees exactly what it caused.
BASE_OUTLIT: dict[str, Any] = {"PUBLIC_KEY": PUBLIC_KEY, "FLUSH_INTERVAL": 60.0}
