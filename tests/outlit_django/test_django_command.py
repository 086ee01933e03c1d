"""``manage.py outlit check|send|flush`` against the local collector over loopback."""

from __future__ import annotations

import socket
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from djtestproject import PUBLIC_KEY

from outlit import RetryPolicy
from outlit_django import outlit


def run(*args: str, **options: Any) -> str:
    out = StringIO()
    call_command("outlit", *args, stdout=out, stderr=StringIO(), **options)
    return out.getvalue()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_check_shows_the_masked_configuration_and_reaches_the_collector(
    configure_outlit, collector
):
    configure_outlit(API_HOST=collector.url, TRANSPORT=None, IDENTIFY_ON_LOGIN=False)
    output = run("check")
    assert PUBLIC_KEY not in output
    assert "pk_test…" in output
    assert f"events_url                {collector.url}/api/i/v1/pk_test…/events" in output
    assert "identify_on_login         False" in output
    assert "pk_test… (from settings.OUTLIT['PUBLIC_KEY'])" in output
    assert "ok   connect" in output
    assert "FAIL" not in output
    assert collector.stats.requests == 0  # a connection only, never an event


def test_check_fails_when_the_host_cannot_be_reached(configure_outlit):
    configure_outlit(API_HOST=f"http://127.0.0.1:{closed_port()}", TRANSPORT=None)
    with pytest.raises(CommandError, match=r"1 Outlit check\(s\) failed"):
        run("check", "--timeout", "1")


def test_check_says_where_the_key_comes_from_and_skips_the_host_when_disabled(
    configure_outlit, monkeypatch
):
    monkeypatch.setenv("OUTLIT_PUBLIC_KEY", "pk_from_env")
    # A blank key counts as missing, whitespace included: the environment's applies.
    for blank in (None, "", "  "):
        configure_outlit(
            PUBLIC_KEY=blank, ENABLED=False, API_HOST=f"http://127.0.0.1:{closed_port()}"
        )
        output = run("check")  # nothing is sent: an unreachable host is not a failure
        assert "pk_from… (from the OUTLIT_PUBLIC_KEY environment variable)" in output, blank
        assert "ok   connection  not checked: ENABLED is False" in output
        assert "FAIL" not in output


def test_check_of_a_disabled_setup_without_a_key_passes_as_the_system_checks_do(
    configure_outlit, monkeypatch
):
    # A staging pipeline with tracking off: `manage.py check` says nothing, and neither
    # must this command fail.
    monkeypatch.delenv("OUTLIT_PUBLIC_KEY", raising=False)
    configure_outlit(PUBLIC_KEY=None, ENABLED=False)
    output = run("check")
    assert "ok   public key  none, and none needed while ENABLED is False" in output
    assert "FAIL" not in output


def test_check_reports_a_missing_key(configure_outlit, collector):
    configure_outlit(PUBLIC_KEY=None, API_HOST=collector.url, TRANSPORT=None)
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("outlit", "check", stdout=out)
    assert "public_key                (none)" in out.getvalue()
    assert "FAIL public key  none" in out.getvalue()
    assert "ok   connect" in out.getvalue()  # not turned off: the host is still worth knowing


def test_check_explains_a_value_the_client_refuses(configure_outlit):
    configure_outlit(MAX_BATCH_SIZE=500)
    with pytest.raises(CommandError, match=r"OUTLIT\['MAX_BATCH_SIZE'\] must be between 1 and 100"):
        run("check")


def test_send_delivers_one_test_event_and_says_so(configure_outlit, collector):
    configure_outlit(API_HOST=collector.url, TRANSPORT=None)
    output = run("send")
    assert "Delivered 'outlit_test_event'" in output
    assert "HTTP 200" in output
    (event,) = collector.events()
    assert event["eventName"] == "outlit_test_event"
    assert event["fingerprint"] == "outlit-django-manage-py-send"
    assert event["properties"] == {"source": "manage.py outlit send"}


def test_send_uses_the_given_identity_and_name(configure_outlit, collector):
    configure_outlit(API_HOST=collector.url, TRANSPORT=None)
    run("send", "--email", "ops@acme.com", "--user-id", "7", "--event-name", "smoke")
    (event,) = collector.events()
    assert (event["eventName"], event["email"], event["userId"]) == ("smoke", "ops@acme.com", "7")
    assert "fingerprint" not in event


def test_send_reports_a_rejected_key(configure_outlit, collector):
    configure_outlit(API_HOST=collector.url, TRANSPORT=None)
    collector.status = 401
    with pytest.raises(CommandError, match=r"refused the public key pk_.*\(failed: HTTP 401\)"):
        run("send")


def test_send_gives_up_after_the_timeout_when_the_service_is_down(configure_outlit):
    configure_outlit(
        API_HOST=f"http://127.0.0.1:{closed_port()}",
        TRANSPORT=None,
        RETRY=RetryPolicy(initial_backoff=0.05, max_backoff=0.1),
        SHUTDOWN_TIMEOUT=0.1,
    )
    with pytest.raises(CommandError, match=r"within 0\.5 s \(failed: ConnectionRefusedError"):
        run("send", "--timeout", "0.5")


def test_a_test_event_not_delivered_is_not_left_for_the_process_to_retry_at_exit(
    configure_outlit,
):
    # The process-wide client would retry it for SHUTDOWN_TIMEOUT more seconds at exit: the
    # command would take --timeout plus that. The command sends through a client of its own.
    configure_outlit(API_HOST=f"http://127.0.0.1:{closed_port()}", TRANSPORT=None)
    with pytest.raises(CommandError, match=r"within 0\.3 s"):
        run("send", "--timeout", "0.3")
    from outlit_django.client import peek_client

    left = peek_client()
    assert left is None or left.queue_size == 0, "the test event waits in the process's client"


def test_send_leaves_a_transport_from_the_settings_open_for_the_process_client(
    configure_outlit,
):
    from outlit import MockTransport

    class ClosesForGood(MockTransport):
        closed = False

        def close(self) -> None:
            self.closed = True

    transport = ClosesForGood()

    def answer(request: Any) -> int:
        assert not transport.closed, "sent through a closed transport"
        return 200

    transport.handler = answer
    configure_outlit(TRANSPORT=transport)
    run("send")  # through a client of its own, shut down when the command ends
    assert not transport.closed
    outlit.track(event_name="after_send", email="ops@acme.com")
    assert outlit.flush(timeout=5)
    assert [e["eventName"] for e in transport.events] == ["outlit_test_event", "after_send"]


def test_send_refuses_when_tracking_is_disabled(configure_outlit):
    configure_outlit(ENABLED=False)
    with pytest.raises(CommandError, match="disabled"):
        run("send")


def test_flush_delivers_what_this_process_queued(configure_outlit):
    transport = configure_outlit()
    assert run("flush") == "Nothing is queued in this process.\n"
    for n in range(3):
        outlit.track(user_id=str(n), event_name="queued")
    assert run("flush").startswith("Flushed 3 event(s).")
    assert len(transport.events) == 3


def test_flush_says_when_it_gives_up(configure_outlit):
    configure_outlit(
        API_HOST=f"http://127.0.0.1:{closed_port()}",
        TRANSPORT=None,
        RETRY=RetryPolicy(initial_backoff=0.05, max_backoff=0.1),
        SHUTDOWN_TIMEOUT=0.1,
    )
    outlit.track(user_id="1", event_name="stuck")
    with pytest.raises(CommandError, match=r"gave up after 0\.3 s with 1 of 1"):
        run("flush", "--timeout", "0.3")


def test_a_bad_timeout_and_a_bad_action_are_refused(configure_outlit):
    configure_outlit()
    for bad in ("0", "nan", "inf"):
        with pytest.raises(CommandError, match="--timeout must be a finite number of seconds"):
            run("flush", "--timeout", bad)
    with pytest.raises(CommandError, match="track\\(\\) needs event_name"):
        run("send", "--event-name", " ")
    with pytest.raises(CommandError, match="invalid choice"):
        run("resend")
