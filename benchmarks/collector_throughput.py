"""How many events per second the local collector ingests from one keep-alive client.

The collector runs in its own process (as ``outlit dev`` does) so the client and the
server do not share a GIL; the client posts pre-built 100-event bodies, each event
with its own uuid, over one ``http.client`` connection and waits for every answer.

    python benchmarks/collector_throughput.py [--rounds 7] [--requests 200] [--storage both]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
EVENTS_PER_REQUEST = 100
PUBLIC_KEY = "pk_bench"

# Run the collector's own CLI entry point, as `outlit dev` would.
SERVER_CODE = "import sys; from outlit._collector.server import main; sys.exit(main(sys.argv[1:]))"


def build_body(round_index: int, request_index: int) -> bytes:
    """One realistic SDK batch: a mix of the four event types, every event with its uuid."""
    events = []
    for i in range(EVENTS_PER_REQUEST):
        email = f"user{request_index}-{i}@example.com"
        common = {"timestamp": 1706400000000 + i, "url": f"server://{email}", "path": "/"}
        kind = i % 4
        if kind == 0:
            event = {
                "type": "custom",
                **common,
                "eventName": "subscription_upgraded",
                "email": email,
                "customerId": "cust_123",
                "customerDomain": "acme.com",
                "properties": {"fromPlan": "starter", "toPlan": "pro", "mrr": 99},
            }
        elif kind == 1:
            event = {
                "type": "identify",
                **common,
                "email": email,
                "userId": f"u_{i}",
                "traits": {"name": "Ada", "plan": "pro"},
            }
        elif kind == 2:
            event = {
                "type": "stage",
                **common,
                "stage": "activated",
                "properties": {"__fingerprint": None, "__email": email, "__userId": None},
            }
        else:
            event = {
                "type": "billing",
                **common,
                "url": "server://acme.com",
                "status": "paid",
                "customerDomain": "acme.com",
                "domain": "acme.com",
                "properties": {"plan": "pro"},
            }
        event["uuid"] = str(uuid.uuid4())
        events.append(event)
    return json.dumps({"source": "server", "events": events}, separators=(",", ":")).encode()


def start_collector(extra_args: list[str]) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER_CODE, "--port", "0", "--quiet", *extra_args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    first_line = process.stdout.readline()
    if "listening on " not in first_line:
        process.kill()
        process.wait()
        raise SystemExit(f"collector did not start: {first_line!r}")
    return process, first_line.rsplit(" ", 1)[1].strip()


def stop_collector(process: subprocess.Popen[str]) -> None:
    process.terminate()  # SIGTERM: the collector commits and exits cleanly
    try:
        process.wait(timeout=10)
    finally:
        if process.stdout is not None:
            process.stdout.close()


def run(storage: str, rounds: int, requests: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        args = ["--memory"] if storage == "memory" else ["--db", str(Path(tmp) / "bench.sqlite3")]
        process, url = start_collector(args)
        try:
            parts = urlsplit(url)
            connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port)
            path = f"/api/i/v1/{PUBLIC_KEY}/events"
            headers = {"Content-Type": "application/json"}
            # Warm up the connection and the server's code paths.
            for body in [build_body(-1, r) for r in range(20)]:
                connection.request("POST", path, body, headers)
                connection.getresponse().read()

            rates: list[float] = []
            latencies: list[float] = []
            for round_index in range(rounds):
                bodies = [build_body(round_index, r) for r in range(requests)]
                started = time.perf_counter()
                for body in bodies:
                    sent = time.perf_counter()
                    connection.request("POST", path, body, headers)
                    response = connection.getresponse()
                    response.read()
                    latencies.append(time.perf_counter() - sent)
                    if response.status != 200:
                        raise SystemExit(f"unexpected status {response.status}")
                elapsed = time.perf_counter() - started
                rates.append(requests * EVENTS_PER_REQUEST / elapsed)
            connection.close()
        finally:
            stop_collector(process)

    latencies.sort()
    median = statistics.median(rates)
    body_kib = len(build_body(0, 0)) / 1024
    print(
        f"{storage:>6}: median {median:,.0f} events/s "
        f"(rounds: {', '.join(f'{rate:,.0f}' for rate in rates)}); "
        f"{median / EVENTS_PER_REQUEST:,.0f} requests/s of {body_kib:.1f} KiB; "
        f"latency p50 {latencies[len(latencies) // 2] * 1000:.2f} ms, "
        f"p99 {latencies[int(len(latencies) * 0.99)] * 1000:.2f} ms"
    )
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=200, help="requests per round")
    parser.add_argument("--storage", choices=("memory", "file", "both"), default="both")
    args = parser.parse_args()
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(
        f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs "
        f"(load average {load}); {args.rounds} rounds x {args.requests} requests "
        f"x {EVENTS_PER_REQUEST} events, one keep-alive connection"
    )
    for storage in ("memory", "file") if args.storage == "both" else (args.storage,):
        run(storage, args.rounds, args.requests)


if __name__ == "__main__":
    main()
