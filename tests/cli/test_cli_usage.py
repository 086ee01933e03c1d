"""The command line's shape: help on every command, --version, usage errors exit 2, and how
KEY=VALUE arguments are read."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest

from outlit import __version__
from outlit._cli import main, parse_value

COMMANDS = [
    [],
    ["dev"],
    ["send"],
    ["identify"],
    ["user"],
    ["user", "activate"],
    ["user", "engaged"],
    ["user", "inactive"],
    ["customer"],
    ["customer", "trialing"],
    ["customer", "paid"],
    ["customer", "churned"],
    ["doctor"],
    ["demo"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "outlit")
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: outlit {' '.join(command)}".rstrip())


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("dev", "send", "identify", "user", "customer", "doctor", "demo"):
        assert f"    {name}" in out
    assert "exit codes:" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"outlit {__version__}"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["launch"], "invalid choice: 'launch'"),
        (["send", "--email", "a@b.co"], "the following arguments are required: --event-name"),
        (["send", "-e", "x", "--email", "a@b.co", "--bogus"], "unrecognized arguments: --bogus"),
        (["send", "-e", "x", "--email", "a@b.co", "-p", "plan"], "expected KEY=VALUE"),
        (["send", "-e", "x", "--email", "a@b.co", "-p", "=pro"], "expected KEY=VALUE"),
        (["send", "-e", "x", "--email", "a@b.co", "--timeout", "0"], "positive number"),
        (["send", "-e", "x", "--email", "a@b.co", "--timestamp", "2024-01-28T00:00"], "UTC offset"),
        (["send", "-e", "x", "--email", "a@b.co", "--timestamp", "yesterday"], "ISO 8601"),
        (["user"], "required: STAGE"),
        (["customer", "refunded"], "invalid choice: 'refunded'"),
        (["demo", "--only", "nope"], "invalid choice: 'nope'"),
        (["dev", "--db", "x.sqlite3", "--memory"], "--db and --memory cannot be used together"),
        (["dev", "--port", "eighty"], "invalid int value"),
    ],
)
def test_argument_errors_print_usage_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "usage: outlit" in err
    assert message in err


def test_a_call_without_its_identity_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["user", "activate", "--public-key", "pk_test", "--customer-domain", "acme.com"]
    # --customer-domain does not exist for stages: argparse refuses it before the SDK would.
    assert main(argv) == 2
    assert "unrecognized arguments: --customer-domain" in capsys.readouterr().err

    argv = ["send", "-e", "signup", "--public-key", "pk_test", "--api-host", "http://127.0.0.1:9"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "usage: outlit send" in err
    assert (
        "needs at least one of email, user_id, fingerprint, customer_id or customer_domain" in err
    )


def test_a_missing_public_key_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["send", "-e", "signup", "--email", "a@b.co"]) == 2
    err = capsys.readouterr().err
    assert "public_key is required" in err
    assert "--public-key" in err


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("99", 99),
        ("-1.5", -1.5),
        ("true", True),
        ("false", False),
        ("null", None),
        ("pro", "pro"),
        ('"42"', "42"),
        ("", ""),
        ("NaN", "NaN"),
        ("Infinity", "Infinity"),
        ("[1, 2]", "[1, 2]"),
        ('{"a": 1}', '{"a": 1}'),
        ("a=b", "a=b"),
    ],
)
def test_values_are_json_scalars_or_text(raw: str, value: object) -> None:
    parsed = parse_value(raw)
    assert parsed == value
    assert type(parsed) is type(value)


def test_python_dash_m_outlit(run_outlit: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    version = run_outlit("--version")
    assert version.returncode == 0
    assert version.stdout.strip() == f"outlit {__version__}"
    usage = run_outlit("send")
    assert usage.returncode == 2
    assert "usage: outlit send" in usage.stderr
