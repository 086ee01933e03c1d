"""Where bytes go on the wire: the transport seam between the worker and the network.

:class:`HTTPTransport` posts with one pooled, keep-alive ``httpx.Client`` (httpx is imported on
first send, so ``import outlit`` stays cheap). :class:`MockTransport` answers from a function in
memory, for unit tests. A transport turns every network-level failure into :class:`TransportError`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ._version import __version__

USER_AGENT = f"outlit-python/{__version__}"


@dataclass(frozen=True)
class Request:
    """One POST of a batch: the full URL and the encoded JSON body."""

    url: str
    body: bytes
    timeout: float

    def json(self) -> Any:
        import json

        return json.loads(self.body)


@dataclass(frozen=True)
class Response:
    """What the service answered. Header names are lower-case."""

    status_code: int
    headers: Mapping[str, str] = field(default_factory=dict)
    content: bytes = b""

    def json(self) -> Any:
        import json

        return json.loads(self.content) if self.content else None


class TransportError(Exception):
    """The request did not get an HTTP answer (connection refused, timeout, reset...)."""


@runtime_checkable
class Transport(Protocol):
    def send(self, request: Request) -> Response: ...

    def close(self) -> None: ...


class HTTPTransport:
    """Posts over HTTP(S) with a lazily created, pooled ``httpx.Client``."""

    def __init__(self, **client_kwargs: Any) -> None:
        self._client_kwargs = client_kwargs
        self._client: Any = None
        # Held while the client is created and during the first request: both import modules
        # (httpx, ssl, its backends). fork() waits for it (see hold_for_fork), so a child never
        # inherits an import half done by a thread it does not have.
        self._lock = threading.Lock()
        self._warm = False
        self._held_for_fork = False

    def _get_client(self) -> Any:
        if self._client is None:
            import httpx

            kwargs: dict[str, Any] = {
                "headers": {"Content-Type": "application/json", "User-Agent": USER_AGENT},
                "limits": httpx.Limits(max_connections=4, max_keepalive_connections=2),
                "follow_redirects": False,
                "trust_env": True,
            }
            kwargs.update(self._client_kwargs)
            self._client = httpx.Client(**kwargs)
        return self._client

    def send(self, request: Request) -> Response:
        if self._warm:
            return self._send(request)
        with self._lock:
            try:
                return self._send(request)
            finally:
                self._warm = True

    def _send(self, request: Request) -> Response:
        import httpx

        client = self._get_client()
        try:
            response = client.post(request.url, content=request.body, timeout=request.timeout)
            content = response.content
        except httpx.HTTPError as exc:
            raise TransportError(f"{type(exc).__name__}: {exc}") from exc
        except OSError as exc:  # pragma: no cover - httpx maps these, kept as a safety net
            raise TransportError(f"{type(exc).__name__}: {exc}") from exc
        headers = {k.lower(): v for k, v in response.headers.items()}
        return Response(response.status_code, headers, content)

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def hold_for_fork(self, timeout: float) -> None:
        """Before fork: wait (at most ``timeout``) until no first-use import is under way."""
        if not self._held_for_fork:
            self._held_for_fork = self._lock.acquire(timeout=timeout)

    def release_after_fork(self) -> None:
        if self._held_for_fork:
            self._held_for_fork = False
            self._lock.release()

    def reset_after_fork(self) -> None:
        """Forget the parent's connections without closing them (the parent still uses them)."""
        self._lock = threading.Lock()
        self._held_for_fork = False
        self._client = None


class MockTransport:
    """Answers every request with ``handler(request)``; keeps the requests it saw.

    The handler may return a :class:`Response`, an ``int`` status, or raise
    :class:`TransportError` to simulate a network failure.
    """

    def __init__(self, handler: Callable[[Request], Response | int] | None = None) -> None:
        self.handler = handler
        self.requests: list[Request] = []
        self._lock = threading.Lock()

    def send(self, request: Request) -> Response:
        with self._lock:
            self.requests.append(request)
        if self.handler is None:
            count = len(request.json()["events"])
            return Response(200, {}, b'{"success":true,"processed":%d}' % count)
        result = self.handler(request)
        if isinstance(result, int):
            return Response(result, {}, b"")
        return result

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every event of every request seen, in order."""
        with self._lock:
            requests = list(self.requests)
        return [event for request in requests for event in request.json()["events"]]

    def close(self) -> None:
        pass
