"""The collector's own request parsing, byte by byte: header fields, lengths, chunked bodies.

Each malformed request below is sent whole and nothing more, so the collector has read
every byte when it answers and closes; a request it misreads would leave it waiting
for a body, and the socket timeout fails the test.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest
from collector_helpers import KEY, body, custom

from outlit._collector import Collector

PATH = f"/api/i/v1/{KEY}/events"


@pytest.fixture
def sock(collector: Collector) -> Iterator[socket.socket]:
    with socket.create_connection(("127.0.0.1", collector.port), timeout=5) as connection:
        yield connection


def _read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One answer off a keep-alive connection: status, headers (lower-cased), body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a whole answer: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers["content-length"])
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk
        rest += chunk
    return int(status_line.split()[1]), headers, rest[:length]


def _closed(sock: socket.socket) -> bool:
    return sock.recv(1) == b""


def _post_head(*fields: str, path: str = PATH) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n" + "".join(f"{f}\r\n" for f in fields)
    ).encode()


def test_header_names_are_case_insensitive_and_values_trimmed(
    collector: Collector, sock: socket.socket
) -> None:
    data = body(custom(uuid="h1"))
    sock.sendall(
        _post_head("content-TYPE:    application/json   ", f"CONTENT-length:{len(data)}")
        + b"\r\n"
        + data
    )
    status, headers, answer = _read_answer(sock)
    assert (status, json.loads(answer)) == (200, {"success": True, "processed": 1})
    assert "connection" not in headers  # kept alive
    assert collector.events()[0]["uuid"] == "h1"


def test_ok_answer_is_the_compact_json_the_encoder_writes(sock: socket.socket) -> None:
    data = body(custom(uuid="a"), custom(uuid="b"))
    sock.sendall(
        _post_head("Content-Type: application/json", f"Content-Length: {len(data)}")
        + b"\r\n"
        + data
    )
    _, _, answer = _read_answer(sock)
    assert answer == json.dumps({"success": True, "processed": 2}, separators=(",", ":")).encode()


def test_repeated_fields_read_as_one_comma_joined_value(
    collector: Collector, sock: socket.socket
) -> None:
    data = body(custom(uuid="r1"))
    sock.sendall(
        _post_head(
            "Content-Type: application/json",
            f"Content-Length: {len(data)}",
            "X-Trace: a",
            "x-trace: b",
        )
        + b"\r\n"
        + data
    )
    assert _read_answer(sock)[0] == 200
    assert collector.requests[-1].headers["x-trace"] == "a, b"


def test_two_different_content_lengths_are_400(sock: socket.socket) -> None:
    sock.sendall(_post_head("Content-Length: 5", "Content-Length: 7") + b"\r\n")
    status, headers, answer = _read_answer(sock)
    assert status == 400
    assert "Content-Length" in json.loads(answer)["message"]
    assert headers["connection"] == "close" and _closed(sock)


@pytest.mark.parametrize("value", ["+5", "1_0", "0x5", "-1", "5.0", "", "\u0665"])
def test_content_length_other_than_decimal_digits_is_400(sock: socket.socket, value: str) -> None:
    sock.sendall(_post_head("Content-Type: application/json", f"Content-Length: {value}") + b"\r\n")
    assert _read_answer(sock)[0] == 400
    assert _closed(sock)


def test_post_without_a_length_is_411(sock: socket.socket) -> None:
    sock.sendall(_post_head("Content-Type: application/json") + b"\r\n")
    assert _read_answer(sock)[0] == 411
    assert _closed(sock)


def test_connection_close_among_other_tokens_closes(sock: socket.socket) -> None:
    sock.sendall(
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive, Close\r\n\r\n"
    )
    status, headers, _ = _read_answer(sock)
    assert (status, headers["connection"]) == (200, "close")
    assert _closed(sock)


def test_http_1_0_keep_alive_is_kept(sock: socket.socket) -> None:
    for _ in range(2):
        sock.sendall(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        status, headers, _ = _read_answer(sock)
        assert status == 200 and "connection" not in headers


def test_header_line_without_a_colon_is_400(sock: socket.socket) -> None:
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nno colon here\r\n")
    status, _, answer = _read_answer(sock)
    assert status == 400 and json.loads(answer)["message"] == "Bad header field"
    assert _closed(sock)


def test_more_than_100_header_fields_is_400(sock: socket.socket) -> None:
    sock.sendall(b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-F%d: v\r\n" % i for i in range(101)))
    assert _read_answer(sock)[0] == 400
    assert _closed(sock)


def test_100_header_fields_are_fine(sock: socket.socket) -> None:
    fields = b"".join(b"X-F%d: v\r\n" % i for i in range(100))
    sock.sendall(b"GET /healthz HTTP/1.1\r\n" + fields + b"\r\n")
    assert _read_answer(sock)[0] == 200


def test_header_line_over_64_kib_is_400(sock: socket.socket) -> None:
    line = b"X-Big: " + b"a" * (65536 + 1 - len(b"X-Big: "))  # one byte past the limit, unended
    sock.sendall(b"GET /healthz HTTP/1.1\r\n" + line)
    status, _, answer = _read_answer(sock)
    assert status == 400 and json.loads(answer)["message"] == "Bad header field"
    assert _closed(sock)


def test_request_line_over_64_kib_is_400(sock: socket.socket) -> None:
    sock.sendall(b"GET /" + b"a" * 65532)  # 65537 bytes, unended
    assert _read_answer(sock)[0] == 400
    assert _closed(sock)


def test_chunked_body_with_extensions_and_trailers(
    collector: Collector, sock: socket.socket
) -> None:
    data = body(custom(uuid="c1"))
    first, second = data[:7], data[7:]
    chunks = (
        b"%x;name=value\r\n%s\r\n" % (len(first), first)
        + b"%X\r\n%s\r\n" % (len(second), second)
        + b"0\r\nX-Trailer: t\r\n\r\n"
    )
    request = _post_head("Content-Type: application/json", "Transfer-Encoding: chunked")
    sock.sendall(request + b"\r\n" + chunks)
    assert _read_answer(sock)[0] == 200
    sock.sendall(
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    )  # the connection is still in step
    assert _read_answer(sock)[0] == 200
    assert collector.events()[0]["uuid"] == "c1"


@pytest.mark.parametrize("size", [b"-1", b"0x10", b"1_0", b"+5", b"zz", b"", b" "])
def test_bad_chunk_size_is_400_without_waiting(sock: socket.socket, size: bytes) -> None:
    request = _post_head("Content-Type: application/json", "Transfer-Encoding: chunked")
    sock.sendall(request + b"\r\n" + size + b"\r\n")
    status, _, answer = _read_answer(sock)
    assert status == 400 and json.loads(answer)["message"] == "bad chunked encoding"
    assert _closed(sock)


def test_deeply_nested_body_is_400_and_the_connection_stays_usable(sock: socket.socket) -> None:
    data = b'{"source":"server","events":[' + b"[" * 100_000 + b"]" * 100_000 + b"]}"
    sock.sendall(
        _post_head("Content-Type: application/json", f"Content-Length: {len(data)}")
        + b"\r\n"
        + data
    )
    status, _, answer = _read_answer(sock)
    assert status == 400 and "nested too deeply" in json.loads(answer)["message"]
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert _read_answer(sock)[0] == 200


def test_repeated_fields_count_towards_the_limit(sock: socket.socket) -> None:
    sock.sendall(b"GET /healthz HTTP/1.1\r\n" + b"X-Same: v\r\n" * 101)
    assert _read_answer(sock)[0] == 400
    assert _closed(sock)


def test_chunked_body_to_an_unknown_route_is_404_and_closes(sock: socket.socket) -> None:
    request = _post_head("Content-Type: application/json", "Transfer-Encoding: chunked", path="/x")
    sock.sendall(request + b"\r\n")
    status, headers, _ = _read_answer(sock)
    assert (status, headers["connection"]) == (404, "close")
    assert _closed(sock)


def test_unknown_route_with_a_length_reads_the_body_and_keeps_the_connection(
    sock: socket.socket,
) -> None:
    sock.sendall(_post_head("Content-Length: 5", path="/x") + b"\r\nhello")
    status, headers, _ = _read_answer(sock)
    assert status == 404 and "connection" not in headers
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert _read_answer(sock)[0] == 200


def test_request_cut_off_in_its_headers_is_dropped_unanswered(sock: socket.socket) -> None:
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    sock.shutdown(socket.SHUT_WR)
    assert _closed(sock)
