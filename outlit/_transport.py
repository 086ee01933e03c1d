"""Where bytes go on the wire: the transport seam between the worker and the network.

:class:`HTTPTransport` (the default) posts each batch over HTTP/1.1 on one kept-alive
connection, written on the standard library's ``socket`` and ``ssl``: the worker shares the GIL
with the application, and this costs about a tenth of the CPU of an ``httpx.Client`` request
(see ``benchmarks/track_overhead.py``). :class:`HttpxTransport` posts with a pooled
``httpx.Client`` instead, for what only httpx offers (HTTP/2, custom auth or mounts, your own
client settings). :class:`MockTransport` answers from a function in memory, for unit tests.
A transport turns every network-level failure into :class:`TransportError`.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ._log import without_credentials
from ._version import __version__

if TYPE_CHECKING:
    import ssl

USER_AGENT = f"outlit-python/{__version__}"

#: Limits on what the service may answer (its answers are a few hundred bytes).
MAX_LINE = 65_536
MAX_HEADERS = 100
MAX_RESPONSE_BODY = 4 * 1024 * 1024

_PROXY_VARIABLES = (
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
)


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


class _ClosedBeforeAnswer(Exception):
    """A kept-alive connection turned out closed before any byte of the answer arrived."""


@dataclass(frozen=True)
class _Target:
    """Where a URL's requests go: the socket address, the TLS name and the request head."""

    address: tuple[str, int]
    tls_host: str | None  # set for https://
    tunnel: str | None  # "host:port" to CONNECT to through an http proxy (https via proxy)
    head: bytes  # request line and headers up to Content-Length's value


class _FirstUseGuard(ABC):
    """The first request imports modules (ssl, httpx...): those imports run under a lock that
    fork() waits for (see hold_for_fork), so a child never inherits an import half done by a
    thread it does not have. Later requests skip the lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._warm = False
        self._held_for_fork = False

    def send(self, request: Request) -> Response:
        if self._warm:
            return self._send(request)
        with self._lock:
            try:
                if not self._prepare(request):
                    return self._send(request)
            finally:
                self._warm = True
        return self._send(request)

    def _prepare(self, request: Request) -> bool:
        """Do, under the lock, every import that sending ``request`` needs; True when done, so
        that the request itself (which may wait ``timeout`` for the network) runs without the
        lock, and a fork() meanwhile does not wait for it. False: the whole first request runs
        under the lock."""
        return False

    @abstractmethod
    def _send(self, request: Request) -> Response:
        """Post ``request``; every network-level failure raises :class:`TransportError`."""

    def hold_for_fork(self, timeout: float) -> None:
        """Before fork: wait (at most ``timeout``) until no first-use import is under way."""
        if not self._held_for_fork:
            self._held_for_fork = self._lock.acquire(timeout=timeout)

    def release_after_fork(self) -> None:
        if self._held_for_fork:
            self._held_for_fork = False
            self._lock.release()

    def reset_after_fork(self) -> None:
        self._lock = threading.Lock()
        self._held_for_fork = False


# Connections a forked child inherited: kept, never closed or collected (see reset_after_fork).
_INHERITED: list[tuple[Any, Any]] = []


class HTTPTransport(_FirstUseGuard):
    """Posts over HTTP/1.1 on one kept-alive connection (standard library ``socket``/``ssl``).

    ``proxy`` is an ``http://[user:password@]host:port`` URL; by default (``trust_env=True``)
    the ``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY``/``NO_PROXY`` variables apply, as in curl.
    ``verify`` is ``True`` (the system's certificate authorities, which honour
    ``SSL_CERT_FILE``), the path of a CA bundle, an ``ssl.SSLContext``, or ``False``.
    """

    def __init__(
        self,
        *,
        proxy: str | None = None,
        verify: bool | str | ssl.SSLContext = True,
        trust_env: bool = True,
    ) -> None:
        if proxy is not None:
            try:
                _parse_proxy(proxy)
            except (TransportError, ValueError) as exc:  # ValueError: a bad port
                from ._exceptions import OptionError

                raise OptionError(
                    f"HTTPTransport(proxy=...): {without_credentials(exc, proxy)}"
                ) from None
        self._proxy = proxy
        self._verify = verify
        self._trust_env = trust_env
        self._ssl_context: ssl.SSLContext | None = None
        self._targets: dict[str, _Target] = {}
        self._sock: socket.socket | None = None
        self._reader: Any = None
        self._address: _Target | None = None
        self._send_lock = threading.Lock()
        super().__init__()

    # -- sending ---------------------------------------------------------------------------

    def _prepare(self, request: Request) -> bool:
        # What a send imports on first use: urllib.request for the proxy variables (in
        # _target), ssl, and the idna codec, which getaddrinfo and the TLS handshake use for
        # host names.
        target = self._targets.get(request.url) or self._target(request.url)
        try:
            target.address[0].encode("idna")
            if target.tls_host is not None:
                self._context()
                target.tls_host.encode("idna")
        except UnicodeError as exc:
            # The host alone: the URL carries the public key, which logs show masked.
            raise TransportError(f"bad host name {target.address[0]!r}: {exc}") from exc
        return True

    def _send(self, request: Request) -> Response:
        target = self._targets.get(request.url) or self._target(request.url)
        message = b"%s%d\r\n\r\n%s" % (target.head, len(request.body), request.body)
        with self._send_lock:
            for _ in range(2):
                reused = self._sock is not None and self._address is target
                if not reused:
                    self._disconnect()
                    self._connect(target, request.timeout)
                try:
                    return self._exchange(message, request.timeout)
                except _ClosedBeforeAnswer:
                    self._disconnect()
                    if not reused:
                        raise TransportError(
                            "the server closed the connection without answering"
                        ) from None
                    # The server had closed this idle connection: send once more on a new one.
                    # A request that did arrive twice is recognised by its events' uuids.
                except TransportError:
                    self._disconnect()
                    raise
                except (OSError, ValueError) as exc:
                    self._disconnect()
                    raise TransportError(_describe(exc)) from exc
        raise TransportError("the server closed the connection without answering")

    def _exchange(self, message: bytes, timeout: float) -> Response:
        sock, reader = self._sock, self._reader
        assert sock is not None
        sock.settimeout(timeout)
        try:
            sock.sendall(message)
            status_line = reader.readline(MAX_LINE + 1)
        except (ConnectionError, BrokenPipeError) as exc:
            raise _ClosedBeforeAnswer from exc
        if not status_line:
            raise _ClosedBeforeAnswer
        while True:
            version, status = _parse_status(status_line)
            headers = _read_headers(reader)
            if not 100 <= status < 200:
                break
            status_line = reader.readline(MAX_LINE + 1)  # an interim answer: the real one follows
        content, keep = _read_body(reader, status, headers)
        connection = headers.get("connection", "").lower()
        if version != b"HTTP/1.1" or "close" in connection or not keep:
            self._disconnect()
        return Response(status, headers, content)

    # -- connections -----------------------------------------------------------------------

    def _target(self, url: str) -> _Target:
        scheme, rest = url.split("://", 1) if "://" in url else ("", url)
        scheme = scheme.lower()
        if scheme not in ("http", "https"):
            raise TransportError(f"cannot post to {url!r}: only http:// and https:// URLs")
        netloc, slash, path = rest.partition("/")
        path = slash + path or "/"
        host, port = _split_host(netloc, 443 if scheme == "https" else 80)
        default_port = port == (443 if scheme == "https" else 80)
        host_header = _bracket(host) if default_port else f"{_bracket(host)}:{port}"
        proxy = self._proxy_for(scheme, host)
        extra = ""
        tunnel = None
        if proxy is None:
            address = (host, port)
        else:
            proxy_host, proxy_port, credentials = _parse_proxy(proxy)
            address = (proxy_host, proxy_port)
            if scheme == "https":
                tunnel = f"{_bracket(host)}:{port}"
            else:
                path = f"http://{host_header}{path}"  # a plain-HTTP proxy takes the full URL
                if credentials:
                    extra = f"Proxy-Authorization: Basic {credentials}\r\n"
            if tunnel is not None and credentials:
                tunnel += f"\r\nProxy-Authorization: Basic {credentials}"
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: {USER_AGENT}\r\n"
            f"Content-Type: application/json\r\nAccept: application/json\r\n{extra}"
            "Content-Length: "
        ).encode("latin-1")
        target = _Target(address, host if scheme == "https" else None, tunnel, head)
        self._targets[url] = target
        return target

    def _proxy_for(self, scheme: str, host: str) -> str | None:
        if self._proxy is not None:
            return self._proxy
        if not self._trust_env:
            return None
        if not any(name in os.environ for name in _PROXY_VARIABLES):
            return None  # the common case, without importing urllib.request
        import urllib.request

        proxies = urllib.request.getproxies()
        proxy = proxies.get(scheme) or proxies.get("all")
        if not proxy or urllib.request.proxy_bypass(host):
            return None
        return proxy

    def _connect(self, target: _Target, timeout: float) -> None:
        try:
            sock = socket.create_connection(target.address, timeout=timeout)
        except OSError as exc:
            raise TransportError(_describe(exc)) from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if target.tunnel is not None:
                _open_tunnel(sock, target.tunnel)
            if target.tls_host is not None:
                sock = self._context().wrap_socket(sock, server_hostname=target.tls_host)
        except TransportError:
            sock.close()
            raise
        except (OSError, ValueError) as exc:
            sock.close()
            raise TransportError(_describe(exc)) from exc
        self._sock = sock
        self._reader = sock.makefile("rb")
        self._address = target

    def _context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            import ssl

            verify = self._verify
            if isinstance(verify, ssl.SSLContext):
                context = verify
            elif isinstance(verify, str):
                context = ssl.create_default_context(cafile=verify)
            else:
                context = ssl.create_default_context()
                if verify is False:
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
            self._ssl_context = context
        return self._ssl_context

    def _disconnect(self) -> None:
        sock, reader = self._sock, self._reader
        self._sock = self._reader = self._address = None
        if reader is not None:
            reader.close()
        if sock is not None:
            sock.close()

    def close(self) -> None:
        with self._send_lock:
            self._disconnect()

    # -- fork ------------------------------------------------------------------------------

    def reset_after_fork(self) -> None:
        """Let go of the parent's connection without shutting it down (the parent still uses
        it): the child closes only its own copy of the descriptor, sending nothing.

        The socket and its reader are never closed or collected here: the parent's worker may
        have been inside a request at fork time, holding the reader's internal lock, which
        the child inherits held and which closing (even by the garbage collector) would wait
        for forever. Detached from its descriptor, the socket object is inert."""
        super().reset_after_fork()
        self._send_lock = threading.Lock()
        sock, reader = self._sock, self._reader
        self._sock = self._reader = self._address = None
        if sock is not None:
            _INHERITED.append((sock, reader))
            with contextlib.suppress(OSError):
                os.close(sock.detach())


def _split_host(netloc: str, default_port: int) -> tuple[str, int]:
    netloc = netloc.rpartition("@")[2]
    if netloc.startswith("["):  # [IPv6]:port
        host, _, rest = netloc[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_text = netloc.partition(":")
    if not host:
        raise TransportError(f"no host in {netloc!r}")
    try:
        port = int(port_text) if port_text else default_port
    except ValueError:
        raise TransportError(f"bad port in {netloc!r}") from None
    return host, port


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _parse_proxy(proxy: str) -> tuple[str, int, str | None]:
    """(host, port, base64 credentials or None) of an ``http://`` proxy URL."""
    import base64
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    if parts.scheme != "http" or not parts.hostname:
        shown = without_credentials(proxy, proxy)  # the variable's value may hold a password
        raise TransportError(
            f"unsupported proxy {shown!r}: use an http://host:port proxy "
            "(for SOCKS, outlit.HttpxTransport with httpx's socks extra)"
        )
    try:
        port = parts.port or 80
    except ValueError as exc:  # the port is not a number (or a password holds a / or #)
        shown = without_credentials(proxy, proxy)
        detail = without_credentials(exc, proxy)
        raise TransportError(f"the proxy {shown!r} is not a usable URL: {detail}") from None
    credentials = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        credentials = base64.b64encode(pair.encode()).decode("ascii")
    return parts.hostname, port, credentials


def _open_tunnel(sock: socket.socket, tunnel: str) -> None:
    authority = tunnel.partition("\r\n")[0]
    sock.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {tunnel}\r\n\r\n".encode("latin-1"))
    reader = sock.makefile("rb")
    try:
        _, status = _parse_status(reader.readline(MAX_LINE + 1))
        _read_headers(reader)
    finally:
        reader.close()
    if status != 200:
        raise TransportError(f"the proxy refused CONNECT {authority} (HTTP {status})")


def _parse_status(line: bytes) -> tuple[bytes, int]:
    if len(line) > MAX_LINE:
        raise TransportError("the status line of the answer is too long")
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise TransportError(f"not an HTTP answer: {line[:80]!r}")
    return parts[0], int(parts[1])


def _read_headers(reader: Any) -> dict[str, str]:
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS + 1):
        line = reader.readline(MAX_LINE + 1)
        if line in (b"\r\n", b"\n"):
            return headers
        if not line:
            raise TransportError("the connection closed in the middle of the answer's headers")
        if len(line) > MAX_LINE:
            raise TransportError("a header of the answer is too long")
        name, colon, value = line.partition(b":")
        if colon:
            key = name.strip().lower().decode("latin-1")
            text = value.strip().decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
    raise TransportError(f"the answer has more than {MAX_HEADERS} headers")


def _read_body(reader: Any, status: int, headers: Mapping[str, str]) -> tuple[bytes, bool]:
    """(body, whether the connection can carry another request)."""
    if status in (204, 304):
        return b"", True
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return _read_chunked(reader), True
    length = headers.get("content-length")
    if length is not None:
        try:
            size = int(length.split(",")[0])
        except ValueError:
            raise TransportError(f"bad Content-Length {length!r}") from None
        if size < 0 or size > MAX_RESPONSE_BODY:
            raise TransportError(f"an answer of {size} bytes is over the limit")
        content = reader.read(size)
        if len(content) != size:
            raise TransportError("the connection closed in the middle of the answer")
        return content, True
    content = reader.read(MAX_RESPONSE_BODY + 1)  # no length: the answer ends with the connection
    if len(content) > MAX_RESPONSE_BODY:
        raise TransportError("the answer is over the size limit")
    return content, False


def _read_chunked(reader: Any) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        line = reader.readline(MAX_LINE + 1)
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise TransportError(f"bad chunk size {line[:40]!r}") from None
        if size == 0:
            _read_headers(reader)  # trailers, then the blank line
            return b"".join(parts)
        total += size
        if total > MAX_RESPONSE_BODY:
            raise TransportError("the answer is over the size limit")
        chunk = reader.read(size)
        if len(chunk) != size or reader.readline(MAX_LINE + 1) not in (b"\r\n", b"\n"):
            raise TransportError("the connection closed in the middle of the answer")
        parts.append(chunk)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out" if str(exc) in ("", "timed out") else f"timed out ({exc})"
    return f"{type(exc).__name__}: {exc}"


class HttpxTransport(_FirstUseGuard):
    """Posts over HTTP(S) with a pooled ``httpx.Client``.

    Keyword arguments go to ``httpx.Client`` (``proxy``, ``verify``, ``http2``, ``mounts``...).
    A client is built here and closed at once, so that options the installed httpx refuses (a
    misspelt keyword, ``proxy`` before httpx 0.26, ``http2=True`` without the ``h2`` package)
    raise :class:`OptionError` where the transport is made, instead of failing every send. The
    one that sends is built at the first send, in the process and with the patches (gevent's)
    in force then. Costs the worker several times the CPU of :class:`HTTPTransport` per
    request.
    """

    def __init__(self, **client_kwargs: Any) -> None:
        self._client_kwargs = client_kwargs
        super().__init__()
        self._new_client().close()
        self._client: Any = None

    def _new_client(self) -> Any:
        import httpx

        kwargs: dict[str, Any] = {
            "headers": {"Content-Type": "application/json", "User-Agent": USER_AGENT},
            "limits": httpx.Limits(max_connections=4, max_keepalive_connections=2),
            "follow_redirects": False,
            "trust_env": True,
        }
        kwargs.update(self._client_kwargs)
        try:
            return httpx.Client(**kwargs)
        except (TypeError, ValueError, ImportError, httpx.InvalidURL) as exc:
            from ._exceptions import OptionError

            # The options' names only: their values may hold a proxy's password.
            raise OptionError(
                f"HttpxTransport({', '.join(f'{name}=...' for name in self._client_kwargs)}): "
                f"httpx {httpx.__version__} refused these options: "
                f"{without_credentials(exc, *self._client_kwargs.values())}"
            ) from None  # the original message may hold what this one hides

    def _get_client(self) -> Any:
        if self._client is None:  # the first send, and again after close() or a fork
            self._client = self._new_client()
        return self._client

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

    def reset_after_fork(self) -> None:
        """Forget the parent's connections without closing them (the parent still uses them)."""
        super().reset_after_fork()
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
