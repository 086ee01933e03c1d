"""Checks shared by ``outlit doctor`` and the adapters' ``check`` commands: the resolved
configuration with the key masked, the key's form, and whether the API host can be reached."""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ._log import without_credentials
from ._options import Options, looks_like_placeholder, mask_key
from ._transport import HTTPTransport, HttpxTransport, Transport, TransportError, _parse_proxy


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
        from ._collector.contract import check_key as has_key_form

        if not has_key_form(public_key):
            # The form the local collector accepts, and the service's keys have.
            return Check(
                "public key",
                False,
                f"{mask_key(public_key)} has characters no public key has (after 'pk_' only "
                "letters, digits, '_' and '-'): copy it again from Outlit's settings",
            )
        return Check("public key", True, f"{mask_key(public_key)} has the pk_ form")
    return Check(
        "public key", False, "public keys start with 'pk_': copy it from Outlit's settings"
    )


def check_connectivity(
    api_host: str, timeout: float = 5.0, transport: Transport | None = None
) -> list[Check]:
    """Resolve the host and open a TCP connection to it (no request is sent): to the proxy
    instead when the client's transport sends through one, as ``transport`` (default: the
    default transport) would; not at all for a transport that does not use the network."""
    parts = urlsplit(api_host)
    scheme = parts.scheme
    host = parts.hostname or ""
    port = parts.port or (443 if scheme == "https" else 80)
    checks: list[Check] = []
    if scheme == "http" and not is_this_machine(host):
        checks.append(
            Check("scheme", False, f"{api_host} is plain http to a non-local host; use https")
        )
    if transport is not None and not isinstance(transport, (HTTPTransport, HttpxTransport)):
        note = f"not checked: the client sends through {type(transport).__name__}"
        return [Check("connect", True, note), *checks]
    proxy: str | None = None
    try:
        proxy = _proxy_for(transport, scheme, host)
        via = ""
        if proxy is not None:
            proxy_scheme = urlsplit(proxy if "://" in proxy else f"http://{proxy}").scheme
            if proxy_scheme != "http" and isinstance(transport, HttpxTransport):
                # httpx also speaks https:// and socks5:// proxies: not checked here.
                note = f"not checked: through the {proxy_scheme} proxy that httpx uses"
                return [Check("connect", True, note), *checks]
            via = f" (the proxy for {host})"
            host, port, _ = _parse_proxy(proxy)
    except TransportError as exc:
        return [Check("proxy", False, str(exc)), *checks]
    except ValueError as exc:  # a proxy variable's port that is not a number, say
        detail = f"the proxy URL is not usable: {without_credentials(exc, proxy)}"
        return [Check("proxy", False, detail), *checks]
    try:
        started = time.monotonic()
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        address = infos[0][4]
        checks.insert(
            0,
            Check(
                "DNS",
                True,
                f"{host}{via} -> {address[0]} ({(time.monotonic() - started) * 1000:.0f} ms)",
            ),
        )
    except OSError as exc:
        return [Check("DNS", False, f"cannot resolve {host!r}{via}: {exc}"), *checks]
    try:
        started = time.monotonic()
        with socket.create_connection((host, port), timeout=timeout):
            pass
        elapsed = (time.monotonic() - started) * 1000
        connected = Check(
            "connect", True, f"{host}:{port}{via} accepted a connection ({elapsed:.0f} ms)"
        )
    except OSError as exc:
        connected = Check("connect", False, f"cannot connect to {host}:{port}{via}: {exc}")
    checks.insert(1, connected)
    return checks


def _proxy_for(transport: Transport | None, scheme: str, host: str) -> str | None:
    """The proxy URL the transport would send ``scheme://host`` requests through, or None."""
    if isinstance(transport, HttpxTransport):
        given = transport._client_kwargs.get("proxy")
        if isinstance(given, str):
            return given
        if given is not None or transport._client_kwargs.get("mounts"):
            return None  # an httpx.Proxy or mounts: not ours to read; the direct check stands
        if transport._client_kwargs.get("trust_env") is False:
            return None
        return HTTPTransport()._proxy_for(scheme, host)  # httpx reads the same variables
    if isinstance(transport, HTTPTransport):
        return transport._proxy_for(scheme, host)
    return HTTPTransport()._proxy_for(scheme, host)


def diagnose(options: Options, timeout: float = 5.0) -> list[Check]:
    """Every check, in the order a person would fix them."""
    return [
        check_key(options.public_key),
        *check_connectivity(options.api_host, timeout, options.transport),
    ]
