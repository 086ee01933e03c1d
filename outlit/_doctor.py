"""Checks shared by ``outlit doctor`` and the adapters' ``check`` commands: the resolved
configuration with the key masked, the key's form, and whether the API host can be reached."""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ._options import Options, looks_like_placeholder, mask_key


@dataclass(frozen=True)
class Check:
    """One line of a report: ``ok`` False means something the user must fix."""

    name: str
    ok: bool
    detail: str


def describe(options: Options) -> dict[str, Any]:
    """The configuration as a plain dict, safe to print: the key is masked."""
    shown = options.as_dict()
    shown["public_key"] = mask_key(options.public_key)
    shown["retry"] = repr(options.retry)
    shown["transport"] = type(options.transport).__name__ if options.transport else "HTTPTransport"
    shown["events_url"] = options.events_url.replace(
        options.public_key, mask_key(options.public_key)
    )
    return shown


def is_this_machine(host: str) -> bool:
    """Whether a host name or address is this machine (plain http is fine there)."""
    if host in ("localhost", "0.0.0.0", "host.docker.internal"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback  # all of 127.0.0.0/8, and ::1
    except ValueError:
        return False


def check_key(public_key: str) -> Check:
    if looks_like_placeholder(public_key):
        return Check(
            "public key",
            False,
            f"{public_key!r} looks like a placeholder: copy the real key from Outlit's settings",
        )
    if public_key.startswith("pk_") and len(public_key) > 3:
        return Check("public key", True, f"{mask_key(public_key)} has the pk_ form")
    return Check(
        "public key", False, "public keys start with 'pk_': copy it from Outlit's settings"
    )


def check_connectivity(api_host: str, timeout: float = 5.0) -> list[Check]:
    """Resolve the host and open a TCP connection to it (no request is sent)."""
    parts = urlsplit(api_host)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    checks: list[Check] = []
    try:
        started = time.monotonic()
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        address = infos[0][4]
        checks.append(
            Check(
                "DNS",
                True,
                f"{host} -> {address[0]} ({(time.monotonic() - started) * 1000:.0f} ms)",
            )
        )
    except OSError as exc:
        checks.append(Check("DNS", False, f"cannot resolve {host!r}: {exc}"))
        return checks
    try:
        started = time.monotonic()
        with socket.create_connection((host, port), timeout=timeout):
            pass
        checks.append(
            Check(
                "connect",
                True,
                f"{host}:{port} accepted a connection ({(time.monotonic() - started) * 1000:.0f} ms)",
            )
        )
    except OSError as exc:
        checks.append(Check("connect", False, f"cannot connect to {host}:{port}: {exc}"))
    if parts.scheme == "http" and not is_this_machine(host):
        checks.append(
            Check("scheme", False, f"{api_host} is plain http to a non-local host; use https")
        )
    return checks


def diagnose(options: Options, timeout: float = 5.0) -> list[Check]:
    """Every check, in the order a person would fix them."""
    return [check_key(options.public_key), *check_connectivity(options.api_host, timeout)]
