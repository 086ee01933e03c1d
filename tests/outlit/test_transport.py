"""The transports on their own, over loopback: the default HTTPTransport (standard library
sockets) against a scriptable raw HTTP server, and both it and HttpxTransport against the
collector. A transport must answer with a Response or raise TransportError, nothing else."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from outlit import (
    HTTPTransport,
    HttpxTransport,
    OptionError,
    Outlit,
    Request,
    Response,
    RetryPolicy,
    TransportError,
)
from outlit._collector.server import Collector

Answer = Callable[["Exchange"], bytes | None]

OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{"success":true}'


class Exchange:
    """One request as the server read it."""

    def __init__(self, connection: int, line: bytes, headers: dict[str, str], body: bytes) -> None:
        self.connection = connection
        self.line = line
        self.headers = headers
        self.body = body


class RawServer:
    """HTTP/1.1 on 127.0.0.1, answering each request with the bytes ``answer`` returns (None:
    close the connection without answering; after an answer with neither Content-Length nor
    chunked encoding, it closes). Records every request and connection."""

    def __init__(self, answer: Answer, tls: ssl.SSLContext | None = None) -> None:
        self.answer = answer
        self.tls = tls
        self.exchanges: list[Exchange] = []
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open: list[socket.socket] = []
        self._stopping = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/api/i/v1/pk_t/events"

    def _accept(self) -> None:
        while not self._stopping:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(sock, self.connections), daemon=True).start()

    def _serve(self, sock: socket.socket, number: int) -> None:
        try:
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_side=True)
            self._open.append(sock)
            reader = sock.makefile("rb")
            while True:
                line = reader.readline()
                if not line:
                    return
                headers: dict[str, str] = {}
                while (header := reader.readline()) not in (b"\r\n", b""):
                    name, _, value = header.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = reader.read(int(headers.get("content-length", "0")))
                exchange = Exchange(number, line.rstrip(b"\r\n"), headers, body)
                self.exchanges.append(exchange)
                reply = self.answer(exchange)
                if reply is None:
                    return
                sock.sendall(reply)
                if b"\r\nContent-Length:" not in reply and b"chunked" not in reply:
                    return  # an answer without a length ends with the connection
        except OSError:
            return
        finally:
            sock.close()

    def close_connections(self) -> None:
        for sock in self._open:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self._stopping = True
        self._listener.close()
        self.close_connections()


@pytest.fixture
def serve() -> Iterator[Callable[..., RawServer]]:
    servers: list[RawServer] = []

    def start(answer: Answer = lambda exchange: OK, tls: ssl.SSLContext | None = None) -> RawServer:
        server = RawServer(answer, tls)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def transport() -> Iterator[HTTPTransport]:
    made = HTTPTransport(trust_env=False)
    yield made
    made.close()


def post(
    transport: Any, url: str, body: bytes = b'{"events":[]}', timeout: float = 5.0
) -> Response:
    response: Response = transport.send(Request(url, body, timeout))
    return response


def test_posts_json_with_the_headers_the_service_expects(serve, transport):
    server = serve()
    response = post(transport, server.url, b'{"source":"server","events":[]}')
    assert response.status_code == 200
    assert response.json() == {"success": True}
    assert response.headers["content-type"] == "application/json"
    (exchange,) = server.exchanges
    assert exchange.line == b"POST /api/i/v1/pk_t/events HTTP/1.1"
    assert exchange.headers["host"] == f"127.0.0.1:{server.port}"
    assert exchange.headers["content-type"] == "application/json"
    assert exchange.headers["user-agent"].startswith("outlit-python/")
    assert exchange.body == b'{"source":"server","events":[]}'


def test_one_connection_carries_every_request(serve, transport):
    server = serve()
    for number in range(20):
        assert post(transport, server.url, b'{"n":%d}' % number).status_code == 200
    assert server.connections == 1
    assert [json.loads(e.body)["n"] for e in server.exchanges] == list(range(20))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX-only")
def test_a_forked_child_closes_its_copy_of_the_connection_and_the_parent_keeps_it(serve, transport):
    server = serve()
    assert post(transport, server.url, b'{"n":0}').status_code == 200
    inherited = transport._sock.fileno()
    pid = os.fork()
    if pid == 0:  # the child: report through the exit code only
        code = 1
        try:
            transport.reset_after_fork()
            try:
                os.fstat(inherited)
            except OSError:
                code = 0  # its copy of the descriptor is closed
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # Nothing was sent or shut down on the parent's connection: it carries the next request.
    assert post(transport, server.url, b'{"n":1}').status_code == 200
    assert server.connections == 1
    assert [json.loads(e.body)["n"] for e in server.exchanges] == [0, 1]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX-only")
def test_a_child_forked_while_a_request_is_in_flight_lets_go_at_once(serve, transport):
    # The parent's worker is inside a request at fork time: it holds the reader's lock, which
    # the child inherits held. Letting go must not wait for it (it would wait forever).
    arrived, answer = threading.Event(), threading.Event()
    answer.set()

    def slow(exchange: Exchange) -> bytes:
        arrived.set()
        answer.wait(10)
        return OK

    server = serve(slow)
    assert post(transport, server.url).status_code == 200  # the connection exists
    arrived.clear()
    answer.clear()
    in_flight = threading.Thread(target=post, args=(transport, server.url))
    in_flight.start()
    assert arrived.wait(5)
    time.sleep(0.05)  # the parent's thread is now waiting for the answer
    pid = os.fork()
    if pid == 0:
        try:
            transport.reset_after_fork()
        finally:
            os._exit(0)
    deadline = time.monotonic() + 5
    exited = 0
    while time.monotonic() < deadline and not exited:
        exited, _ = os.waitpid(pid, os.WNOHANG)
        time.sleep(0.02)
    if not exited:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    answer.set()
    in_flight.join(10)
    assert exited, "the forked child hung letting go of the inherited connection"
    assert post(transport, server.url).status_code == 200  # the parent's connection still works
    assert server.connections == 1


def test_a_second_client_on_a_shared_transport_leaves_the_first_ones_connection_alone(
    serve, transport
):
    server = serve()
    first = Outlit(
        public_key="pk_t", api_host=f"http://127.0.0.1:{server.port}", transport=transport
    )
    try:
        first.track(event_name="e", email="a@x.com")
        assert first.flush(timeout=5)
        connection = transport._sock
        second = Outlit(
            public_key="pk_t", api_host=f"http://127.0.0.1:{server.port}", transport=transport
        )
        assert transport._sock is connection  # not dropped by the second client's construction
        second.shutdown(timeout=0)
    finally:
        first.shutdown(timeout=5)


def test_a_connection_the_server_closed_while_idle_is_replaced_and_the_request_sent_once(
    serve, transport
):
    server = serve()
    assert post(transport, server.url).status_code == 200
    server.close_connections()
    time.sleep(0.05)
    assert post(transport, server.url, b'{"second":1}').status_code == 200
    assert server.connections == 2
    assert [e.body for e in server.exchanges].count(b'{"second":1}') == 1


def test_a_fresh_connection_closed_without_an_answer_is_a_transport_error(serve, transport):
    server = serve(lambda exchange: None)
    with pytest.raises(TransportError, match="closed the connection"):
        post(transport, server.url)
    assert len(server.exchanges) == 1  # never resent on a connection that was new


def test_connection_close_is_honoured(serve, transport):
    closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"
    server = serve(lambda exchange: closing)
    for _ in range(3):
        assert post(transport, server.url).status_code == 200
    assert server.connections == 3


def test_chunked_answers_interim_answers_and_repeated_headers_are_read(serve, transport):
    chunked = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 207 Multi-Status\r\nTransfer-Encoding: chunked\r\nX-Note: a\r\nX-Note: b\r\n\r\n"
        b'5\r\n{"err\r\n9;ext=1\r\nors":[1]}\r\n0\r\nX-Trailer: t\r\n\r\n'
    )
    server = serve(lambda exchange: chunked)
    for _ in range(2):  # the connection stays usable after a chunked answer
        response = post(transport, server.url)
        assert response.status_code == 207
        assert response.content == b'{"errors":[1]}'
        assert response.headers["x-note"] == "a, b"
    assert server.connections == 1


def test_an_answer_without_length_ends_with_the_connection(serve, transport):
    server = serve(lambda exchange: b"HTTP/1.1 503 Busy\r\nRetry-After: 2\r\n\r\nbusy")
    response = post(transport, server.url)
    assert (response.status_code, response.content, response.headers["retry-after"]) == (
        503,
        b"busy",
        "2",
    )
    assert post(transport, server.url).status_code == 503
    assert server.connections == 2


@pytest.mark.parametrize(
    "reply",
    [
        b"garbage\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\n" + b"X-A: 1\r\n" * 200 + b"\r\n",
    ],
    ids=["not-http", "short-body", "bad-length", "bad-chunk", "too-many-headers"],
)
def test_a_malformed_answer_is_a_transport_error_and_the_connection_is_dropped(
    serve, transport, reply
):
    answers = iter([reply, OK])
    server = serve(lambda exchange: next(answers))
    with pytest.raises(TransportError):
        post(transport, server.url)
    assert post(transport, server.url).status_code == 200
    assert server.connections == 2


def test_a_server_that_does_not_answer_times_out(serve, transport):
    server = serve(lambda exchange: time.sleep(3) or OK)
    started = time.monotonic()
    with pytest.raises(TransportError, match="timed out"):
        post(transport, server.url, timeout=0.3)
    assert time.monotonic() - started < 2


def test_connection_refused_is_a_transport_error(transport):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(TransportError, match="ConnectionRefused"):
        post(transport, f"http://127.0.0.1:{port}/api/i/v1/pk_t/events")


def test_a_url_that_is_not_http_is_a_transport_error(transport):
    with pytest.raises(TransportError, match="only http:// and https://"):
        post(transport, "ftp://127.0.0.1/x")


def test_an_http_proxy_gets_the_full_url_and_its_credentials(serve):
    proxy = serve()
    target = "http://api.example.test:8080/api/i/v1/pk_t/events"
    transport = HTTPTransport(proxy=f"http://user:p%40ss@127.0.0.1:{proxy.port}")
    try:
        assert post(transport, target).status_code == 200
    finally:
        transport.close()
    (exchange,) = proxy.exchanges
    assert exchange.line == b"POST " + target.encode() + b" HTTP/1.1"
    assert exchange.headers["host"] == "api.example.test:8080"
    assert exchange.headers["proxy-authorization"] == "Basic dXNlcjpwQHNz"  # user:p@ss


def test_proxy_variables_apply_unless_no_proxy_names_the_host(serve, monkeypatch):
    proxy, direct = serve(), serve()
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
    monkeypatch.setenv("NO_PROXY", "internal.test")
    for name in ("http_proxy", "no_proxy", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    through = HTTPTransport()
    try:
        post(through, "http://api.example.test/api/i/v1/pk_t/events")
    finally:
        through.close()
    assert proxy.exchanges[0].line.startswith(b"POST http://api.example.test/")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    bypassing = HTTPTransport()
    try:
        assert post(bypassing, direct.url).status_code == 200
    finally:
        bypassing.close()
    assert len(direct.exchanges) == 1 and len(proxy.exchanges) == 1
    ignoring = HTTPTransport(trust_env=False)
    monkeypatch.setenv("NO_PROXY", "")
    try:
        assert post(ignoring, direct.url).status_code == 200
    finally:
        ignoring.close()
    assert len(direct.exchanges) == 2 and len(proxy.exchanges) == 1


# -- TLS ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def authority() -> Any:
    trustme = pytest.importorskip("trustme", reason="trustme (dev extra) makes the test CA")
    return trustme.CA()


@pytest.fixture
def tls_server(serve, authority) -> RawServer:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return serve(tls=context)


def test_https_verifies_the_server_against_the_given_authorities(tls_server, authority, tmp_path):
    bundle = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    transport = HTTPTransport(verify=str(bundle), trust_env=False)
    try:
        for _ in range(3):
            assert post(transport, tls_server.url).status_code == 200
    finally:
        transport.close()
    assert tls_server.connections == 1
    assert tls_server.exchanges[0].headers["host"] == f"127.0.0.1:{tls_server.port}"


def test_an_httpx_transport_made_before_gevent_patches_still_sends_over_https(
    tls_server, authority, tmp_path
):
    # gunicorn --preload -k gevent with the transport in the settings: it is made in the master,
    # before the worker patches ssl and socket. Its client must be built at the first send.
    pytest.importorskip("gevent", reason="gevent is in the dev extra")
    bundle = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    script = textwrap.dedent(
        f"""
        from outlit import HttpxTransport, Outlit

        transport = HttpxTransport(verify={str(bundle)!r}, trust_env=False)

        from gevent import monkey

        monkey.patch_all()
        client = Outlit(
            public_key="pk_t", api_host="https://127.0.0.1:{tls_server.port}", transport=transport
        )
        client.track(event_name="signup", email="jane@acme.com")
        print(bool(client.flush(5)), client.stats.delivered)
        client.shutdown(1)
        """
    )
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.split() == ["True", "1"], done.stdout + done.stderr


def test_https_refuses_a_server_it_cannot_verify(tls_server):
    transport = HTTPTransport(trust_env=False)  # the system authorities do not know the test CA
    try:
        with pytest.raises(TransportError, match=r"CERTIFICATE_VERIFY_FAILED|certificate"):
            post(transport, tls_server.url)
    finally:
        transport.close()
    assert tls_server.exchanges == []


def test_https_goes_through_a_proxy_tunnel(serve, tls_server, authority):
    upstream = ("127.0.0.1", tls_server.port)
    tunnels: list[bytes] = []

    class Tunnel(RawServer):
        def _serve(self, sock: socket.socket, number: int) -> None:
            reader = sock.makefile("rb")
            tunnels.append(reader.readline().rstrip(b"\r\n"))
            while reader.readline() not in (b"\r\n", b""):
                pass
            with socket.create_connection(upstream) as out:
                sock.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                pipes = [
                    threading.Thread(target=_pipe, args=(sock, out), daemon=True),
                    threading.Thread(target=_pipe, args=(out, sock), daemon=True),
                ]
                for pipe in pipes:
                    pipe.start()
                for pipe in pipes:
                    pipe.join(5)
            sock.close()

    proxy = Tunnel(lambda exchange: OK)
    context = ssl.create_default_context()
    authority.configure_trust(context)
    transport = HTTPTransport(proxy=f"http://127.0.0.1:{proxy.port}", verify=context)
    try:
        assert post(transport, tls_server.url).status_code == 200
    finally:
        transport.close()
        proxy.stop()
    assert tunnels == [f"CONNECT 127.0.0.1:{tls_server.port} HTTP/1.1".encode()]
    assert len(tls_server.exchanges) == 1


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


# -- both transports, through the client, against the collector -------------------------------


@pytest.mark.parametrize("make", [HTTPTransport, HttpxTransport], ids=["stdlib", "httpx"])
def test_both_transports_deliver_through_the_client(make, collector: Collector):
    collector.script(503)
    client = Outlit(public_key="pk_t", api_host=collector.url, transport=make())
    try:
        for number in range(250):
            client.track(event_name="transported", user_id=f"u{number}")
        result = client.flush(timeout=10)
    finally:
        client.shutdown()
    assert result
    events = collector.events(limit=1000)
    assert sorted(int(e["userId"][1:]) for e in events) == list(range(250))
    assert len({e["uuid"] for e in events}) == 250


def test_a_proxy_the_default_transport_cannot_use_is_refused_without_showing_its_password(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    with pytest.raises(
        OptionError, match=r"unsupported proxy 'socks5://\*\*\*@127.*HttpxTransport"
    ):
        HTTPTransport(proxy="socks5://bob:hunter2@127.0.0.1:1080")
    with pytest.raises(OptionError, match="Port could not be cast"):
        HTTPTransport(proxy="http://bob:hunter2@127.0.0.1:port")
    for password in ("hun'ter2", "hunter2@x", 'hun"ter2', "hunter2/x", "hunter2#x", "hun?ter2"):
        for make in (HTTPTransport, HttpxTransport):
            for scheme in ("socks5", "http"):
                proxy = f"{scheme}://bob:{password}@127.0.0.1:1080"
                try:
                    make(proxy=proxy).close()
                except OptionError as refused:
                    assert "ter2" not in str(refused), (proxy, str(refused))
                    assert refused.__cause__ is None and refused.__suppress_context__
                else:  # a proxy the transport can use: nothing to show
                    assert make is HttpxTransport or scheme == "http", proxy
    # From the environment, it can only be found at a send: the log names it, not its password.
    for name in ("HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ALL_PROXY", "socks5://bob:hunter2@127.0.0.1:1080")
    client = Outlit(
        public_key="pk_t",
        api_host="http://127.0.0.1:9",
        transport=HTTPTransport(),
        retry=RetryPolicy(initial_backoff=0.02, max_backoff=0.1),
    )
    try:
        with caplog.at_level("DEBUG", logger="outlit"):
            client.track(event_name="proxied", user_id="u1")
            assert not client.flush(timeout=0.5)
    finally:
        client.shutdown(timeout=0)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "unsupported proxy 'socks5://***@127.0.0.1:1080'" in logged
    assert "hunter2" not in logged


def test_httpx_options_the_installed_httpx_refuses_raise_where_the_transport_is_made():
    # Before, the client was built at the first send: each send failed as a "network error",
    # was retried for ever, and every event was lost at exit, with the checks all green.
    with pytest.raises(OptionError, match=r"HttpxTransport\(verfy=\.\.\.\).*'verfy'"):
        HttpxTransport(verfy=False)
    # The options' values are not shown, nor is a password in httpx's own message.
    with pytest.raises(OptionError, match=r"proxy=\.\.\..*Unknown scheme") as refused:
        HttpxTransport(proxy="user:hunter2@127.0.0.1:3128")  # the scheme left out
    assert "hunter2" not in str(refused.value)
    if importlib.util.find_spec("h2") is None:  # HTTP/2 needs httpx's extra
        with pytest.raises(OptionError, match=r"http2=\.\.\..*'h2' package"):
            HttpxTransport(http2=True)


def test_httpx_transport_builds_a_new_client_after_close(collector: Collector):
    transport = HttpxTransport()
    transport.close()
    client = Outlit(public_key="pk_t", api_host=collector.url, transport=transport)
    try:
        client.track(event_name="after_close", user_id="u1")
        assert client.flush(timeout=10)
    finally:
        client.shutdown()
    assert [e["eventName"] for e in collector.events()] == ["after_close"]


def test_the_first_requests_imports_happen_before_it_leaves_the_fork_lock():
    # getaddrinfo imports the idna codec on first use: that must happen in _prepare (under
    # the lock fork() waits for), not in the request itself (outside it).
    code = (
        "import sys\n"
        "from outlit._transport import HTTPTransport, Request\n"
        "HTTPTransport()._prepare(Request('http://127.0.0.1:9/e', b'{}', 1.0))\n"
        "print('encodings.idna' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "True"


def test_a_host_name_that_cannot_be_encoded_is_reported_without_the_public_key(caplog):
    # The error names the host; the URL would print the whole key, which logs show masked.
    # (Nothing is sent: the name fails before any lookup.)
    key = "pk_live_abcdefghijklmnop123456"
    client = Outlit(key, api_host="http://" + "a" * 64 + ".example", flush_interval=60)
    with caplog.at_level("DEBUG", logger="outlit"):
        client.track(email="a@example.com", event_name="e")
        assert not client.flush(0.5)
        client.shutdown(0.1)
    said = [r.getMessage() for r in caplog.records]
    assert any("bad host name" in line for line in said), said
    assert not [line for line in said if key in line]
