"""A minimal loopback ingest endpoint for the framework benchmarks: it counts and answers.

    python benchmarks/sink.py --port 8799

Accepts any ``POST`` as an Outlit batch and answers ``200 {"success":true,"processed":N}``;
it counts the requests and the events (each ``uuid`` once; one seen again counts as a
duplicate) and serves those counts on ``GET /api/stats`` (``events_stored``,
``ingest_requests`` and ``duplicates``, as the local collector names them) and
``GET /healthz``. It does not validate or store anything: the collector (``outlit dev``) does that, at several microseconds
per event. On a two-core machine that runs the server and the load generator too, the
collector's CPU would be charged to the server under test; this sink's share is a fraction
of that, closer to a remote service, which costs the app nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Counts:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events = 0
        self.requests = 0
        self.duplicates = 0
        self.seen: set[object] = set()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's transport expects
    # The head and the body of an answer go out in two writes. With Nagle's algorithm on, the
    # second waits for the client's delayed ACK of the first: 40 ms more per batch.
    disable_nagle_algorithm = True
    counts = Counts()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        events = json.loads(body)["events"]
        uuids = [event.get("uuid") for event in events]
        counts = self.counts
        with counts.lock:
            before = len(counts.seen)
            counts.seen.update(uuids)
            new = len(counts.seen) - before
            counts.duplicates += len(uuids) - new
            counts.events += new
            counts.requests += 1
        self._answer(b'{"success":true,"processed":%d}' % len(events))

    def do_GET(self) -> None:
        if self.path == "/api/stats":
            counts = self.counts
            with counts.lock:
                stats = {
                    "events_stored": counts.events,
                    "ingest_requests": counts.requests,
                    "duplicates": counts.duplicates,
                }
            self._answer(json.dumps(stats).encode())
        elif self.path == "/healthz":
            self._answer(b'{"ok":true}')
        else:
            self.send_error(404)

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
