"""The extension object: init_app, configuration, one client per app, and its misuse errors."""

from __future__ import annotations

import asyncio
import gc
import logging
import subprocess
import sys
import weakref

import pytest
from flask import Flask, g

import outlit
from outlit import MockTransport, OptionError
from outlit._options import OPTION_NAMES
from outlit_flask import Outlit
from outlit_flask._config import CLIENT_DEFAULTS, CONFIG_DEFAULTS
from outlit_flask._extension import EXTENSION_KEY


def test_init_app_keeps_one_client_in_app_extensions(make_app, public_key):
    app = make_app()
    Outlit().init_app(app)

    client = app.extensions["outlit"]
    assert EXTENSION_KEY == "outlit"
    assert isinstance(client, outlit.Outlit)
    assert client.options.public_key == public_key


def test_passing_the_app_to_the_constructor_calls_init_app(make_app):
    app = make_app()
    Outlit(app)
    assert isinstance(app.extensions["outlit"], outlit.Outlit)


def test_every_client_option_has_an_outlit_config_key():
    assert set(CLIENT_DEFAULTS) == {f"OUTLIT_{name.upper()}" for name in OPTION_NAMES}


def test_config_defaults_are_filled_with_setdefault(make_app):
    app = make_app(OUTLIT_TIMEOUT=3.5)
    Outlit(app)

    assert app.config["OUTLIT_TIMEOUT"] == 3.5  # the app's own value stays
    for key, default in CONFIG_DEFAULTS.items():
        assert key in app.config
        if key not in ("OUTLIT_TIMEOUT", "OUTLIT_PUBLIC_KEY", "OUTLIT_TRANSPORT"):
            assert app.config[key] == (60.0 if key == "OUTLIT_FLUSH_INTERVAL" else default)
    assert app.extensions["outlit"].options.timeout == 3.5


def test_every_config_key_reaches_the_client(make_app, transport):
    retry = outlit.RetryPolicy()
    app = make_app(
        OUTLIT_API_HOST="http://127.0.0.1:9/",
        OUTLIT_FLUSH_INTERVAL=2.5,
        OUTLIT_MAX_BATCH_SIZE=7,
        OUTLIT_TIMEOUT=4.0,
        OUTLIT_MAX_QUEUE_SIZE=50,
        OUTLIT_ENABLED=True,
        OUTLIT_SHUTDOWN_TIMEOUT=1.5,
        OUTLIT_MAX_REQUESTS_PER_SECOND=20.0,
        OUTLIT_RETRY=retry,
    )
    Outlit(app)

    options = app.extensions["outlit"].options
    assert (options.api_host, options.flush_interval, options.max_batch_size) == (
        "http://127.0.0.1:9",
        2.5,
        7,
    )
    assert (options.timeout, options.max_queue_size, options.shutdown_timeout) == (4.0, 50, 1.5)
    assert options.max_requests_per_second == 20.0
    assert options.retry is retry
    assert options.transport is transport


def test_constructor_options_are_defaults_that_app_config_overrides(make_app):
    extension = Outlit(timeout=2.0, flush_interval=3.0, flush_on_teardown=True)
    plain = make_app()
    own = make_app(OUTLIT_TIMEOUT=9.0)
    extension.init_app(plain)
    extension.init_app(own)

    assert plain.extensions["outlit"].options.timeout == 2.0
    assert own.extensions["outlit"].options.timeout == 9.0
    # The test fixture sets OUTLIT_FLUSH_INTERVAL itself, so the config wins there too.
    assert plain.extensions["outlit"].options.flush_interval == 60.0
    assert plain.config["OUTLIT_FLUSH_ON_TEARDOWN"] is True


def test_public_key_and_api_host_fall_back_to_the_environment(make_app, monkeypatch):
    monkeypatch.setenv("OUTLIT_PUBLIC_KEY", "pk_from_env")
    monkeypatch.setenv("OUTLIT_API_HOST", "http://127.0.0.1:7")
    app = make_app()
    del app.config["OUTLIT_PUBLIC_KEY"]
    Outlit(app)

    options = app.extensions["outlit"].options
    assert options.public_key == "pk_from_env"
    assert options.api_host == "http://127.0.0.1:7"


def test_missing_public_key_says_which_config_key_to_set(make_app):
    app = make_app()
    del app.config["OUTLIT_PUBLIC_KEY"]

    with pytest.raises(OptionError, match=r"app\.config\['OUTLIT_PUBLIC_KEY'\]") as info:
        Outlit(app)
    assert "OUTLIT_ENABLED = False" in str(info.value)
    assert "outlit" not in app.extensions


def test_disabled_app_needs_no_key_and_sends_nothing(make_app, transport):
    app = make_app(OUTLIT_ENABLED=False)
    del app.config["OUTLIT_PUBLIC_KEY"]
    extension = Outlit(app)

    with app.app_context():
        extension.track(event_name="ignored", email="ada@example.com")
        assert extension.flush(1.0)
    assert transport.requests == []


def test_bad_option_names_the_app_and_the_config_key(make_app):
    app = make_app(name="billing", OUTLIT_TIMEOUT=-1)
    with pytest.raises(OptionError, match=r"app 'billing': OUTLIT_TIMEOUT must be a finite"):
        Outlit(app)
    with pytest.raises(OptionError, match=r"OUTLIT_TRANSPORT must be an object with send"):
        Outlit(make_app(OUTLIT_TRANSPORT="http"))


def test_a_bad_api_host_from_the_environment_is_said_to_come_from_there(make_app, monkeypatch):
    monkeypatch.setenv("OUTLIT_API_HOST", "app.outlit.ai")
    app = make_app()
    app.config["OUTLIT_API_HOST"] = None
    with pytest.raises(
        OptionError, match=r"the OUTLIT_API_HOST environment variable must be an http\(s\) URL"
    ):
        Outlit(app)


def test_flask_switches_must_be_booleans(make_app):
    app = make_app(OUTLIT_FLUSH_ON_TEARDOWN="yes")
    with pytest.raises(OptionError, match="OUTLIT_FLUSH_ON_TEARDOWN must be True or False"):
        Outlit(app)


@pytest.mark.parametrize("value", [0, -1.0, "2", True, None, float("nan"), float("inf")])
def test_teardown_flush_timeout_must_be_seconds_above_zero(make_app, value):
    app = make_app(name="billing", OUTLIT_TEARDOWN_FLUSH_TIMEOUT=value)
    with pytest.raises(
        OptionError, match=r"app 'billing'.*OUTLIT_TEARDOWN_FLUSH_TIMEOUT must be a finite number"
    ):
        Outlit(app)
    assert "outlit" not in app.extensions


def test_teardown_flush_timeout_takes_an_int_or_a_constructor_default(make_app):
    extension = Outlit(teardown_flush_timeout=0.5)
    by_keyword = make_app()
    by_config = make_app(OUTLIT_TEARDOWN_FLUSH_TIMEOUT=3)
    extension.init_app(by_keyword)
    extension.init_app(by_config)

    assert by_keyword.config["OUTLIT_TEARDOWN_FLUSH_TIMEOUT"] == 0.5
    assert by_config.config["OUTLIT_TEARDOWN_FLUSH_TIMEOUT"] == 3


def test_unknown_config_key_is_logged_with_the_nearest_name(make_app, caplog):
    app = make_app(OUTLIT_TIMOUT=3)
    with caplog.at_level(logging.WARNING, logger="outlit"):
        Outlit(app)
    assert "OUTLIT_TIMOUT (did you mean OUTLIT_TIMEOUT?)" in caplog.text


def test_second_init_app_on_one_app_raises_and_keeps_the_first_client(make_app):
    app = make_app()
    extension = Outlit(app)
    first = app.extensions["outlit"]

    with pytest.raises(RuntimeError, match="already set up on app"):
        extension.init_app(app)
    with pytest.raises(RuntimeError, match="already set up on app"):
        Outlit(app)
    assert app.extensions["outlit"] is first
    # g's class was extended once: its base is Flask's own.
    assert app.app_ctx_globals_class.__mro__[1] is Flask.app_ctx_globals_class


def test_using_the_extension_before_init_app_says_to_call_it(make_app):
    extension = Outlit()
    app = make_app(name="shop")

    with app.app_context(), pytest.raises(RuntimeError, match=r"outlit\.init_app\(app\)"):
        extension.track(event_name="too_early", email="ada@example.com")
    with app.app_context(), pytest.raises(RuntimeError, match="not set up on app 'shop'"):
        _ = extension.queue_size


def test_using_the_extension_outside_an_app_context_explains_why():
    with pytest.raises(RuntimeError, match="application context") as raised:
        Outlit().track(event_name="nowhere", email="ada@example.com")
    # As the README says: where there is no app context, the app's client itself works.
    assert "app.extensions['outlit']" in str(raised.value)


def test_one_extension_serves_two_apps_each_with_its_own_client(make_app):
    first_transport, second_transport = MockTransport(), MockTransport()
    extension = Outlit()
    first = make_app(name="first", OUTLIT_TRANSPORT=first_transport)
    second = make_app(name="second", OUTLIT_TRANSPORT=second_transport)
    extension.init_app(first)
    extension.init_app(second)
    for app in (first, second):

        @app.get("/")
        def index() -> str:
            g.outlit.track(event_name="index_viewed", customer_id="cust_1")
            return "ok"

    assert first.extensions["outlit"] is not second.extensions["outlit"]
    assert first.test_client().get("/").status_code == 200
    with second.app_context():
        extension.track(event_name="from_second", email="ada@example.com")
        assert extension.flush(2.0)
    with first.app_context():
        assert extension.flush(2.0)

    assert [e["eventName"] for e in first_transport.events] == ["index_viewed"]
    assert [e["eventName"] for e in second_transport.events] == ["from_second"]


def test_extension_methods_use_the_current_apps_client(make_app, transport):
    app = make_app()
    extension = Outlit(app)

    with app.app_context():
        assert extension.client is app.extensions["outlit"]
        extension.track(event_name="exported", email="ada@example.com")
        extension.identify(user_id="u1", traits={"plan": "pro"})
        extension.user.activate(user_id="u1")
        extension.customer.paid(customer_domain="acme.com")
        assert extension.queue_size == 4
        assert extension.flush(2.0)
        assert extension.stats.delivered == 4
        extension.shutdown()
        with pytest.raises(outlit.ClientClosedError):
            extension.track(event_name="late", email="ada@example.com")

    assert [e["type"] for e in transport.events] == ["custom", "identify", "stage", "billing"]


async def _flush_async(extension: Outlit) -> bool:
    return bool(await extension.aflush(2.0))


def test_aflush_sends_without_blocking_an_async_view(make_app, transport):
    app = make_app()
    extension = Outlit(app)

    with app.app_context():
        extension.track(event_name="exported", email="ada@example.com")
        assert asyncio.run(_flush_async(extension))
    assert len(transport.events) == 1


def test_the_extension_keeps_no_reference_to_the_app(make_app, transport):
    extension = Outlit()
    app = Flask("short_lived")
    app.config.update(OUTLIT_PUBLIC_KEY="pk_test", OUTLIT_TRANSPORT=transport)
    extension.init_app(app)
    app.extensions["outlit"].shutdown()
    gone = weakref.ref(app)

    del app
    gc.collect()
    assert gone() is None


def test_public_names_are_sorted_and_importable():
    import outlit_flask

    assert outlit_flask.__all__ == sorted(outlit_flask.__all__)
    assert {name: hasattr(outlit_flask, name) for name in outlit_flask.__all__} == dict.fromkeys(
        outlit_flask.__all__, True
    )


WITHOUT_FLASK_LOGIN = """
import sys
sys.modules["flask_login"] = None  # as if it were not installed: importing it raises ImportError
from flask import Flask, g
from outlit import MockTransport
from outlit_flask import Outlit, current_user_identity

transport = MockTransport()
app = Flask("no_login")
app.config.update(OUTLIT_PUBLIC_KEY="pk_test", OUTLIT_TRANSPORT=transport)
Outlit(app)

@app.get("/")
def index():
    assert current_user_identity() == {}
    g.outlit.track(event_name="viewed", fingerprint="device-1")
    return "ok"

assert app.test_client().get("/").status_code == 200
with app.app_context():
    assert app.extensions["outlit"].flush(2.0)
assert [e["eventName"] for e in transport.events] == ["viewed"]
print("ok")
"""


def test_flask_login_is_optional():
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_FLASK_LOGIN], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
