"""Client options: defaults, the environment fallback, the events URL, and the errors a
misconfigured client raises at construction."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import outlit
from outlit import MockTransport, OptionError, Outlit, RetryPolicy
from outlit._options import options_from_config

try:
    from ._helpers import ClientFactory, client_factory
except ImportError:
    from _helpers import ClientFactory, client_factory


@pytest.fixture
def clients() -> Iterator[ClientFactory]:
    with client_factory() as factory:
        yield factory


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's own OUTLIT_* variables must not change what these tests see.
    monkeypatch.delenv("OUTLIT_PUBLIC_KEY", raising=False)
    monkeypatch.delenv("OUTLIT_API_HOST", raising=False)


def make(clients: ClientFactory, **options: Any) -> Outlit:
    # Keep the factory's short shutdown and long interval unless the test sets them.
    client, _ = clients(**options)
    return client


def test_defaults_are_the_documented_ones():
    client = Outlit(public_key="pk_live_1", transport=MockTransport())
    try:
        opts = client.options
        assert opts.api_host == "https://app.outlit.ai" == outlit.DEFAULT_API_HOST
        assert opts.flush_interval == 10.0 == outlit.DEFAULT_FLUSH_INTERVAL
        assert opts.max_batch_size == 100 == outlit.DEFAULT_MAX_BATCH_SIZE
        assert opts.timeout == 10.0 == outlit.DEFAULT_TIMEOUT
        assert opts.max_queue_size == 10_000 == outlit.DEFAULT_MAX_QUEUE_SIZE
        assert opts.enabled is True
        assert opts.shutdown_timeout == 5.0 == outlit.DEFAULT_SHUTDOWN_TIMEOUT
        assert opts.max_requests_per_second == 100.0 == outlit.DEFAULT_MAX_REQUESTS_PER_SECOND
        assert isinstance(opts.retry, RetryPolicy)
        assert opts.events_url == "https://app.outlit.ai/api/i/v1/pk_live_1/events"
        assert outlit.MAX_EVENTS_PER_REQUEST == 100
        assert outlit.MAX_BODY_BYTES == 1_000_000
    finally:
        client.shutdown()


def test_public_key_and_host_come_from_the_environment(monkeypatch, clients):
    monkeypatch.setenv("OUTLIT_PUBLIC_KEY", "pk_from_env")
    monkeypatch.setenv("OUTLIT_API_HOST", "http://collector.internal:8080/")
    client, transport = clients(public_key=None)
    assert client.options.public_key == "pk_from_env"
    assert client.options.api_host == "http://collector.internal:8080"
    client.track(event_name="e", email="a@x.com")
    assert client.flush(timeout=5)
    assert transport.requests[0].url == "http://collector.internal:8080/api/i/v1/pk_from_env/events"


def test_explicit_options_win_over_the_environment(monkeypatch, clients):
    monkeypatch.setenv("OUTLIT_PUBLIC_KEY", "pk_from_env")
    monkeypatch.setenv("OUTLIT_API_HOST", "http://from-env.example")
    client = make(clients, public_key="pk_explicit", api_host="https://explicit.example")
    assert client.options.events_url == "https://explicit.example/api/i/v1/pk_explicit/events"


def test_empty_environment_variables_count_as_unset(monkeypatch, clients):
    monkeypatch.setenv("OUTLIT_PUBLIC_KEY", "")
    monkeypatch.setenv("OUTLIT_API_HOST", "")
    with pytest.raises(OptionError, match="OUTLIT_PUBLIC_KEY"):
        Outlit(transport=MockTransport())
    client = make(clients, public_key="pk_1")
    assert client.options.api_host == "https://app.outlit.ai"


@pytest.mark.parametrize(
    ("api_host", "events_url"),
    [
        ("http://localhost:3000/", "http://localhost:3000/api/i/v1/pk_test_unit/events"),
        ("http://localhost:3000//", "http://localhost:3000/api/i/v1/pk_test_unit/events"),
        ("https://app.outlit.ai", "https://app.outlit.ai/api/i/v1/pk_test_unit/events"),
        (
            "https://proxy.example.com/outlit/",
            "https://proxy.example.com/outlit/api/i/v1/pk_test_unit/events",
        ),
        ("  https://app.outlit.ai/ ", "https://app.outlit.ai/api/i/v1/pk_test_unit/events"),
    ],
)
def test_requests_go_to_the_events_url_without_a_double_slash(clients, api_host, events_url):
    client, transport = clients(api_host=api_host)
    client.track(event_name="e", email="a@x.com")
    assert client.flush(timeout=5)
    (request,) = transport.requests
    assert request.url == events_url == client.options.events_url
    assert "//api" not in request.url
    assert "?" not in request.url


def test_public_key_is_stripped_and_placed_in_the_path(clients):
    client = make(clients, public_key="  pk_abc  ")
    assert client.options.events_url.endswith("/api/i/v1/pk_abc/events")


def test_missing_public_key_says_how_to_provide_it():
    with pytest.raises(OptionError) as raised:
        Outlit(transport=MockTransport())
    assert isinstance(raised.value, ValueError)
    assert "public_key" in str(raised.value)
    assert "OUTLIT_PUBLIC_KEY" in str(raised.value)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("public_key", "abc123"),
        ("public_key", ""),
        ("public_key", "pk_a/b"),
        ("public_key", "pk_a?b"),
        ("public_key", "pk_"),
        ("public_key", "pk_abc def"),
        ("public_key", "pk_abç"),
        ("public_key", "pk_a\tb"),
        ("public_key", 123),
        ("api_host", "ftp://app.outlit.ai"),
        ("api_host", "app.outlit.ai"),
        ("api_host", "   "),
        ("api_host", "https://app.outlit.ai/?x=1"),
        ("api_host", "https://app.outlit.ai/#frag"),
        ("api_host", 8080),
        ("api_host", "https://user:secret@app.outlit.ai"),
        ("api_host", "http://[::1"),
        ("api_host", "http://localhost:abc"),
        ("api_host", "http://localhost:99999"),
        ("api_host", "http://:80"),
        ("api_host", "http://a b.com"),
        ("api_host", "https://user:secret@app.outlit.ai:port"),
        ("api_host", "https://user:secret@"),
        ("api_host", "https://user:secret@ gateway.example"),
        # urlsplit drops these from what it parses; the request line would carry them.
        ("api_host", "http://127.0.0.1:8787/x\r\nX-Injected: 1"),
        ("api_host", "http://127.0.0.1:8787/a\tb"),
        ("api_host", "http://127.0.0.1:8787/a b"),
        ("api_host", "https://user:secret@app.outlit.ai/?token=1"),
        ("api_host", "htps://user:secret@app.outlit.ai"),
        # Passwords with characters a URL allows there, or an @ left unencoded.
        ("api_host", "https://user:se'cret@app.outlit.ai/?x=1"),
        ("api_host", "https://user:p@secret@app.outlit.ai/?x=1"),
        ("flush_interval", 0),
        ("flush_interval", -1.0),
        ("flush_interval", "10"),
        ("flush_interval", True),
        ("flush_interval", float("nan")),
        ("flush_interval", float("inf")),
        # Finite but past what a thread can wait: the worker died of OverflowError.
        ("flush_interval", 1e10),
        ("flush_interval", 10**400),
        ("timeout", 1e10),
        ("shutdown_timeout", 1e10),
        ("max_requests_per_second", 10**400),
        ("max_batch_size", 0),
        ("max_batch_size", 101),
        ("max_batch_size", 10.0),
        ("max_batch_size", True),
        ("timeout", 0),
        ("timeout", None),
        ("max_queue_size", 0),
        ("max_queue_size", "many"),
        ("enabled", "yes"),
        ("enabled", 1),
        ("shutdown_timeout", -0.1),
        ("max_requests_per_second", 0),
        ("max_requests_per_second", -5),
        ("retry", {"initial_backoff": 1}),
        ("transport", "http"),
        ("transport", object()),
    ],
)
def test_bad_option_raises_option_error_naming_it(option, value):
    options: dict[str, Any] = {"public_key": "pk_ok", "transport": MockTransport(), option: value}
    with pytest.raises(OptionError) as raised:
        Outlit(**options)
    assert isinstance(raised.value, ValueError)
    assert option in str(raised.value)
    assert "secret" not in str(raised.value) and "cret" not in str(raised.value)


@pytest.mark.parametrize(
    ("option", "value", "unit"),
    [
        ("max_requests_per_second", None, "requests per second"),
        ("max_requests_per_second", "100", "requests per second"),
        ("flush_interval", None, "seconds"),
        ("timeout", "10", "seconds"),
        ("shutdown_timeout", None, "seconds"),
    ],
)
def test_a_non_number_is_refused_in_the_unit_of_its_option(option, value, unit):
    # max_requests_per_second is a rate: None is not documented as "no limit" and is refused.
    with pytest.raises(OptionError) as raised:
        Outlit(public_key="pk_ok", transport=MockTransport(), **{option: value})
    assert str(raised.value) == f"{option} must be a number of {unit}, got {value!r}"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("initial_backoff", 0),
        ("initial_backoff", -1),
        ("max_backoff", "30"),
        ("max_retry_after", True),
        ("max_retry_after", 0),
    ],
)
def test_bad_retry_policy_raises_option_error_naming_the_field(field, value):
    with pytest.raises(OptionError, match=field):
        RetryPolicy(**{field: value})


def test_retry_policy_needs_max_backoff_at_least_initial_backoff():
    with pytest.raises(OptionError, match="max_backoff"):
        RetryPolicy(initial_backoff=2.0, max_backoff=1.0)


def test_retry_backoff_grows_exponentially_with_full_jitter():
    import random

    policy = RetryPolicy(initial_backoff=0.5, max_backoff=4.0)
    rng = random.Random(1234)
    for failures, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 4.0), (100, 4.0)]:
        waits = [policy.backoff(failures, rng) for _ in range(200)]
        assert all(0.0 <= w <= ceiling for w in waits)
        # full jitter: spread over the whole range, not clustered at the ceiling
        assert min(waits) < ceiling * 0.2
        assert max(waits) > ceiling * 0.8


def test_boundary_values_are_accepted(clients):
    client = make(
        clients,
        max_batch_size=1,
        max_queue_size=1,
        shutdown_timeout=0,
        flush_interval=0.001,
        max_requests_per_second=0.5,
    )
    assert client.options.max_batch_size == 1
    client = make(clients, max_batch_size=100, timeout=0.5)
    assert client.options.max_batch_size == 100


def test_disabled_client_needs_no_public_key_and_sends_nothing(clients):
    client, transport = clients(public_key=None, enabled=False)
    client.track(event_name="e", email="a@x.com")
    client.identify(email="a@x.com")
    client.user.activate(email="a@x.com")
    client.customer.paid(customer_id="c1")
    assert client.queue_size == 0
    assert client.flush(timeout=1)
    assert client.shutdown()
    assert transport.requests == []


def test_repr_of_options_and_client_masks_the_public_key(clients):
    client = make(clients, public_key="pk_live_supersecretvalue")
    assert "supersecretvalue" not in repr(client.options)
    assert "supersecretvalue" not in repr(client)
    assert "pk_live" in repr(client)


def test_options_from_config_maps_upper_case_keys_and_reports_unknown_ones():
    kwargs, unknown = options_from_config(
        {"PUBLIC_KEY": "pk_1", "TIMOUT": 3, "MAX_BATCH_SIZE": 10, "timeout": 1, "Enabled": False}
    )
    assert kwargs == {"public_key": "pk_1", "max_batch_size": 10}
    assert unknown == ["TIMOUT", "timeout", "Enabled"]


def test_options_from_config_with_a_prefix_reads_only_prefixed_keys():
    config = {
        "OUTLIT_PUBLIC_KEY": "pk_1",
        "OUTLIT_API_HOST": "http://localhost:3000",
        "OUTLIT_FLUSH_INTERVAL": 2.5,
        "OUTLIT_ENABLED": False,
        "OUTLIT_SHUTDOWN_TIMOUT": 1,
        "SECRET_KEY": "flask-secret",
        42: "not a string key",
    }
    kwargs, unknown = options_from_config(config, prefix="OUTLIT_")
    assert kwargs == {
        "public_key": "pk_1",
        "api_host": "http://localhost:3000",
        "flush_interval": 2.5,
        "enabled": False,
    }
    assert unknown == ["OUTLIT_SHUTDOWN_TIMOUT"]


def test_every_constructor_option_has_a_configuration_key():
    import inspect

    from outlit._options import OPTION_NAMES

    parameters = set(inspect.signature(Outlit.__init__).parameters) - {"self"}
    assert set(OPTION_NAMES) == parameters
    config = {name.upper(): object() for name in OPTION_NAMES}
    kwargs, unknown = options_from_config(config)
    assert set(kwargs) == parameters
    assert unknown == []


def test_options_from_config_builds_a_working_client(clients):
    kwargs, unknown = options_from_config(
        {"PUBLIC_KEY": "pk_cfg", "API_HOST": "http://localhost:9/", "MAX_BATCH_SIZE": 2}
    )
    assert unknown == []
    client, transport = clients(**kwargs)
    for i in range(3):
        client.track(event_name=f"e{i}", user_id="u")
    assert client.flush(timeout=5)
    assert [len(r.json()["events"]) for r in transport.requests] == [2, 1]
    assert transport.requests[0].url == "http://localhost:9/api/i/v1/pk_cfg/events"
