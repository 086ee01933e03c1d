"""``outlit doctor``: the resolved configuration with the key masked, and checks that pass
against a running collector and fail, in plain words and exit 1, when something is wrong."""

from __future__ import annotations

import json
import socket

import pytest

from outlit._cli import main
from outlit._collector.server import Collector

PUBLIC_KEY = "pk_test_doctor_0123456789"


def test_a_good_setup_passes(collector: Collector, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--public-key", PUBLIC_KEY, "--api-host", collector.url]) == 0
    out = capsys.readouterr().out
    assert PUBLIC_KEY not in out
    assert "public_key               pk_test…   from --public-key" in out
    assert f"events_url               {collector.url}/api/i/v1/pk_test…/events" in out
    assert "ok    public key" in out
    assert "ok    connect" in out
    assert "FAIL" not in out
    assert "Everything checks out" in out


def test_settings_from_the_environment_are_named_as_such(
    collector: Collector, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OUTLIT_PUBLIC_KEY", PUBLIC_KEY)
    monkeypatch.setenv("OUTLIT_API_HOST", collector.url + "/")
    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["sources"] == {"public_key": "OUTLIT_PUBLIC_KEY", "api_host": "OUTLIT_API_HOST"}
    assert report["config"]["api_host"] == collector.url  # the trailing / is dropped
    assert report["config"]["public_key"] == "pk_test…"
    assert [check["name"] for check in report["checks"]] == ["public key", "DNS", "connect"]
    assert report["ok"] is True
    assert report["environment"]["outlit"]


def test_an_unreachable_host_fails(closed_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    host = f"http://127.0.0.1:{closed_port}"
    assert main(["doctor", "--public-key", PUBLIC_KEY, "--api-host", host, "--timeout", "1"]) == 1
    out = capsys.readouterr().out
    assert f"FAIL  connect     cannot connect to 127.0.0.1:{closed_port}" in out
    assert "1 problem to fix: connect." in out


def test_a_malformed_key_fails_but_the_host_is_still_checked(
    collector: Collector, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["doctor", "--public-key", "sk_live_123", "--api-host", collector.url]) == 1
    out = capsys.readouterr().out
    assert "FAIL  configuration  public_key must start with 'pk_'" in out
    assert "ok    connect" in out


def test_no_key_at_all_fails_saying_where_to_set_it(
    collector: Collector, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["doctor", "--api-host", collector.url, "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert report["sources"]["public_key"] == "nowhere"
    (failed,) = [check for check in report["checks"] if not check["ok"]]
    assert "OUTLIT_PUBLIC_KEY" in failed["detail"]


def test_a_non_http_host_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--public-key", PUBLIC_KEY, "--api-host", "ftp://example.com"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  configuration  api_host must be an http(s) URL" in out
    assert "FAIL  api host" in out


def test_plain_http_to_any_loopback_address_is_this_machine() -> None:
    from outlit._doctor import is_this_machine

    for host in ("localhost", "127.0.0.1", "127.0.0.2", "::1"):
        assert is_this_machine(host), host
    for host in ("10.0.0.2", "collector.internal", "128.0.0.1"):
        assert not is_this_machine(host), host


def test_a_placeholder_key_fails(collector: Collector, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["doctor", "--public-key", "pk_...", "--api-host", collector.url])
    assert code != 0
    assert "looks like a placeholder" in capsys.readouterr().out


def test_a_key_with_characters_no_key_has_fails(
    collector: Collector, capsys: pytest.CaptureFixture[str]
) -> None:
    # The client sends it, and the collector (like the service) refuses it with a 401: the
    # doctor must not call it fine.
    assert main(["doctor", "--public-key", "pk_live$123", "--api-host", collector.url]) == 1
    out = capsys.readouterr().out
    assert "FAIL  public key" in out
    assert "has characters no public key has" in out
    assert main(["send", "-e", "x", "--email", "a@b.co", "--public-key", "pk_live$123",
                 "--api-host", collector.url]) == 1  # fmt: skip


def test_the_connection_check_follows_what_an_httpx_transport_would_do(monkeypatch):
    from outlit import HttpxTransport
    from outlit._doctor import check_connectivity

    with socket.socket() as direct:
        direct.bind(("127.0.0.1", 0))
        direct.listen()
        host = f"http://127.0.0.1:{direct.getsockname()[1]}"
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        # trust_env=False: httpx ignores the variables and connects directly.
        checks = check_connectivity(host, 2.0, HttpxTransport(trust_env=False))
        assert [(c.name, c.ok) for c in checks] == [("DNS", True), ("connect", True)]
        assert "proxy" not in checks[1].detail
    # A proxy scheme that only httpx speaks is not reported as a failure.
    (check,) = check_connectivity(
        "https://app.outlit.ai", 2.0, HttpxTransport(proxy="socks5://127.0.0.1:9")
    )
    assert check.ok and "not checked: through the socks5 proxy" in check.detail


def test_credentials_in_the_host_or_a_proxy_are_never_shown(
    closed_port: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    host = f"https://user:hunter2@127.0.0.1:{closed_port}"
    assert main(["doctor", "--public-key", PUBLIC_KEY, "--api-host", host, "--timeout", "1"]) == 1
    out = capsys.readouterr().out
    assert "hunter2" not in out
    assert "api_host must not carry credentials" in out
    assert f"https://***@127.0.0.1:{closed_port}" in out  # the configuration, as given
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "socks5://user:hunter2@127.0.0.1:1080")
    assert main(["doctor", "--public-key", PUBLIC_KEY, "--timeout", "1"]) == 1
    out = capsys.readouterr().out
    assert "hunter2" not in out
    assert "FAIL  proxy       unsupported proxy 'socks5://***@127.0.0.1:1080'" in out


def test_a_proxy_variable_that_is_not_a_url_is_a_failed_check_not_a_crash(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://user:hunter2@proxy.internal:abc")
    assert main(["doctor", "--public-key", PUBLIC_KEY, "--timeout", "1"]) == 1
    out = capsys.readouterr().out
    shown = "'http://***@proxy.internal:abc' is not a usable URL: Port could not be cast"
    assert f"FAIL  proxy       the proxy {shown}" in out
    assert "hunter2" not in out
