"""What tracking costs: outlit beside segment-analytics-python and posthog, in one run.

    python benchmarks/track_overhead.py            # all sections
    python benchmarks/track_overhead.py --quick    # fewer rounds

Sections (all printed as medians over rounds, because shared machines are noisy):

1. ``track()`` per call on the request thread, for the seed's quick-start event, with each
   SDK's background worker running and delivering to a 200-answering sink in another process
   on 127.0.0.1. The SDKs are interleaved round by round so that machine noise hits them alike.
2. ``import`` time of outlit, httpx, segment and posthog in fresh interpreters.
3. End-to-end events per second from ``track()`` to the local collector in another process:
   with the service's documented 100 requests/s per key honoured (a ceiling of 10,000
   events/s), and with that limit lifted to show the client's own throughput.
4. Worker cost per event: JSON encoding with the stdlib and with orjson.
5. Memory: RSS growth after 1,000,000 ``track()`` calls with the network down.

segment and posthog are optional (``pip install -e ".[bench]"``); a missing one is reported
as such and left out of the comparison.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from typing import Any

PROPS = {"fromPlan": "starter", "toPlan": "pro", "mrr": 99}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SINK = """
import sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# GET /stall: later POSTs wait until GET /release (workers stalled in I/O, GIL released).
gate = threading.Event()
gate.set()

class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        gate.wait()
        self._answer(b'{"success":true,"status":1}')
    def do_GET(self):
        (gate.clear if self.path == "/stall" else gate.set)()
        self._answer(b"{}")
    def _answer(self, body):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass

ThreadingHTTPServer.daemon_threads = True
server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink)
print("ready", flush=True)
server.serve_forever()
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_process(args: list[str], ready: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if ready in line:
            return proc
        if proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError(f"{args} did not start")


def stop_process(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- 1. per-call cost ---------------------------------------------------------------------


Caller = tuple[Callable[[], None], Callable[[], None], Callable[[], None]]


def make_caller(name: str, sink: str) -> Caller | None:
    """(one quick-start call, flush, shutdown) for one SDK; None when it is not installed."""
    if name == "outlit":
        from outlit import Outlit

        outlit = Outlit(public_key="pk_bench", api_host=sink, max_queue_size=1_000_000)

        def outlit_call() -> None:
            outlit.track(
                email="user@example.com",
                customer_id="cust_123",
                customer_domain="acme.com",
                event_name="subscription_upgraded",
                properties=PROPS,
            )

        return (
            outlit_call,
            lambda: outlit.flush(timeout=60) and None,
            lambda: outlit.shutdown(timeout=2) and None,
        )
    if name == "segment":
        try:
            from segment.analytics import Client as SegmentClient
        except ImportError:
            return None
        segment = SegmentClient(
            write_key="wk_bench", host=sink, max_queue_size=1_000_000, max_retries=0
        )

        def segment_call() -> None:
            segment.track(
                user_id="user@example.com",
                event="subscription_upgraded",
                properties=PROPS,
                context={"groupId": "cust_123", "domain": "acme.com"},
            )

        return (segment_call, segment.flush, segment.shutdown)
    try:
        from posthog import Posthog
    except ImportError:
        return None
    posthog = Posthog(
        "phc_bench",
        host=sink,
        max_queue_size=1_000_000,
        enable_local_evaluation=False,
        max_retries=0,
    )

    def posthog_call() -> None:
        posthog.capture(
            "subscription_upgraded",
            distinct_id="user@example.com",
            properties={**PROPS, "$groups": {"company": "cust_123"}},
        )

    return (posthog_call, posthog.flush, posthog.shutdown)


def sdk_process(name: str, sink: str, calls: int) -> int:
    """One SDK in its own process, so that no other SDK's threads share its GIL. Commands on
    stdin: "run" (time `calls` calls, print microseconds per call), "flush", "quit"."""
    import logging

    logging.disable(logging.CRITICAL)  # the stalled sink makes uploads fail by design
    caller = make_caller(name, sink)
    if caller is None:
        print("missing", flush=True)
        return 0
    call, flush, stop = caller
    print("ready", flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "run":
            started = time.perf_counter()
            for _ in range(calls):
                call()
            print((time.perf_counter() - started) / calls * 1e6, flush=True)
        elif command == "flush":
            flush()
            print("ok", flush=True)
        else:
            break
    stop()
    return 0


def per_call(rounds: int, calls: int, stalled: bool) -> dict[str, float]:
    """Median microseconds per call, each SDK in its own process, rounds interleaved.

    ``stalled``: the sink holds every request during a round (the workers wait in I/O) and
    releases them between rounds, when each SDK flushes, so every round starts with empty
    queues. Otherwise the workers deliver while the calls run."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    sink = start_process([sys.executable, "-c", SINK, str(port)], "ready")
    procs: dict[str, subprocess.Popen[str]] = {}
    samples: dict[str, list[float]] = {}
    try:
        for name in ("outlit", "segment", "posthog"):
            proc = subprocess.Popen(
                [sys.executable, __file__, "--sdk-process", name, url, str(calls)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            assert proc.stdout is not None
            if proc.stdout.readline().strip() == "ready":
                procs[name] = proc
                samples[name] = []
            else:
                print(f"  {name} not installed: left out")
                proc.wait()

        def ask(proc: subprocess.Popen[str], command: str) -> str:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(command + "\n")
            proc.stdin.flush()
            return proc.stdout.readline().strip()

        for _ in range(rounds):
            for name, proc in procs.items():
                if stalled:
                    urllib.request.urlopen(f"{url}/stall").read()
                samples[name].append(float(ask(proc, "run")))
                urllib.request.urlopen(f"{url}/release").read()
                ask(proc, "flush")
    finally:
        urllib.request.urlopen(f"{url}/release").read()
        for proc in procs.values():
            assert proc.stdin is not None
            proc.stdin.write("quit\n")
            proc.stdin.flush()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        stop_process(sink)
    return {name: statistics.median(values) for name, values in samples.items()}


def loop_overhead(rounds: int, calls: int) -> float:
    """The benchmark's own cost per call: the loop and the wrapper function around each SDK's
    call, with an empty body. Subtracted to give each SDK's own cost."""
    sink: dict[str, Any] = {}

    def empty_call() -> None:
        sink.get("x")

    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            empty_call()
        samples.append((time.perf_counter() - started) / calls * 1e6)
    return statistics.median(samples)


def floor(rounds: int, calls: int) -> float:
    """A dict literal and deque.append: the least any queueing SDK can do."""
    from collections import deque

    queue: deque[dict[str, Any]] = deque()
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            queue.append(
                {
                    "type": "custom",
                    "email": "user@example.com",
                    "eventName": "x",
                    "properties": PROPS,
                }
            )
        samples.append((time.perf_counter() - started) / calls * 1e6)
        queue.clear()
    return statistics.median(samples)


# -- 2. import time ------------------------------------------------------------------------


def import_time(module: str, runs: int) -> float | None:
    times = []
    for _ in range(runs):
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)",
            ],
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            return None
        times.append(float(out.stdout.strip()) * 1000)
    return statistics.median(times)


# -- 3. end-to-end throughput --------------------------------------------------------------

THROUGHPUT = """
import sys, time
from outlit import Outlit
n, rps, host = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
client = Outlit(public_key="pk_bench", api_host=host, max_queue_size=n, max_requests_per_second=rps)
props = {"fromPlan": "starter", "toPlan": "pro", "mrr": 99}
started = time.perf_counter()
for i in range(n):
    client.track(email="user@example.com", customer_id="cust_123", customer_domain="acme.com",
                 event_name="subscription_upgraded", properties=props)
result = client.flush(timeout=300)
elapsed = time.perf_counter() - started
stats = client.stats
print(n / elapsed, stats.delivered, stats.dropped, bool(result))
client.shutdown()
"""


def throughput(events: int, rps: float, rounds: int, advertised: int) -> tuple[float, int]:
    rates = []
    delivered = 0
    for _ in range(rounds):
        port = free_port()
        collector = start_process(
            [
                sys.executable,
                "-c",
                "import sys; from outlit._collector.server import main; sys.exit(main(sys.argv[1:]))",
                "--port",
                str(port),
                "--memory",
                "--quiet",
                # The rate the collector advertises in X-RateLimit-*; the client honours it.
                "--rate-limit",
                str(advertised),
            ],
            "listening",
        )
        try:
            out = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    THROUGHPUT,
                    str(events),
                    str(rps),
                    f"http://127.0.0.1:{port}",
                ],
                capture_output=True,
                text=True,
                timeout=600,
            )
            rate, delivered_s, dropped, settled = out.stdout.split()
            rates.append(float(rate))
            delivered = int(delivered_s)
            assert dropped == "0" and settled == "True", out.stdout + out.stderr
        finally:
            stop_process(collector)
    return statistics.median(rates), delivered


# -- 4. worker encoding cost ---------------------------------------------------------------


def encoding_cost(rounds: int) -> dict[str, float]:
    from outlit._encoding import ENCODER_NAME, encode_event

    event = {
        "type": "custom",
        "timestamp": 1706400000000,
        "url": "server://user@example.com",
        "path": "/",
        "eventName": "subscription_upgraded",
        "email": "user@example.com",
        "customerId": "cust_123",
        "customerDomain": "acme.com",
        "properties": PROPS,
        "uuid": "0f8fad5b-d9cb-469f-a165-70867728950e",
    }
    results = {}
    for label, use_orjson in (("json (stdlib)", False), (ENCODER_NAME, True)):
        samples = []
        for _ in range(rounds):
            started = time.perf_counter()
            for _ in range(20_000):
                encode_event(event, use_orjson=use_orjson)
            samples.append((time.perf_counter() - started) / 20_000 * 1e6)
        results[label] = statistics.median(samples)
    return results


# -- 5. memory with the network down --------------------------------------------------------

MEMORY = """
import resource, sys, time
from outlit import Outlit
def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 1e6
client = Outlit(public_key="pk_bench", api_host=sys.argv[1], timeout=0.5)
props = {"fromPlan": "starter", "toPlan": "pro", "mrr": 99}
client.track(email="user@example.com", event_name="warmup")
before = rss_mb()
marks = []
for i in range(1, 1_000_001):
    client.track(email="user@example.com", customer_id="cust_123", customer_domain="acme.com",
                 event_name="subscription_upgraded", properties=props)
    if i in (100_000, 1_000_000):
        marks.append(rss_mb())
stats = client.stats
print(before, marks[0], marks[1], stats.queued, stats.dropped_by_reason.get("queue_full", 0))
client.shutdown(timeout=0.1)
"""


def memory_network_down() -> tuple[float, float, float, int, int]:
    port = free_port()  # nothing listens: every send is refused
    out = subprocess.run(
        [sys.executable, "-c", MEMORY, f"http://127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    before, at_100k, at_1m, queued, dropped = out.stdout.split()
    return float(before), float(at_100k), float(at_1m), int(queued), int(dropped)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args()
    rounds = 7 if args.quick else 15
    figures: dict[str, Any] = {}
    # The peers log every failed upload; the stalled sink makes them fail by design.
    import logging

    for name in ("outlit", "segment", "analytics", "posthog", "urllib3", "backoff"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
        logging.getLogger(name).propagate = False
    gc.collect()

    print(f"Python {sys.version.split()[0]} on {os.cpu_count()} cores")
    print("\n1a. the call alone: track() per call, each SDK in its own process, its worker")
    print("    waiting on a stalled sink")
    costs = per_call(rounds, 5000, stalled=True)
    base = floor(rounds, 5000)
    overhead = loop_overhead(rounds, 5000)
    print(f"  (the loop and wrapper around each call cost {overhead:.2f} us; 'own' subtracts it)")
    for name, cost in sorted(costs.items(), key=lambda item: item[1]):
        own = cost - overhead
        ratio = own / (costs["outlit"] - overhead)
        print(f"  {name:10s} {cost:8.2f} us/call  own {own:7.2f} us   {ratio:6.1f}x outlit")
    print(f"  {'floor':10s} {base:8.2f} us/call   (dict literal + deque.append, inline)")
    figures["track_us"] = costs
    figures["loop_overhead_us"] = overhead
    figures["floor_us"] = base

    print(
        "\n1b. call + background work: the same loop while each SDK's worker delivers to the sink"
    )
    print("    (the workers share the GIL: this is the cost per event the application feels)")
    loaded = per_call(rounds, 5000, stalled=False)
    for name, cost in sorted(loaded.items(), key=lambda item: item[1]):
        print(f"  {name:10s} {cost:8.2f} us/event {cost / loaded['outlit']:6.1f}x outlit")
    figures["track_with_delivery_us"] = loaded

    print("\n2. import time in a fresh interpreter (median)")
    runs = 7 if args.quick else 15
    baseline = import_time("sys", runs) or 0.0
    for module in ("outlit", "httpx", "segment.analytics", "posthog"):
        ms = import_time(module, runs)
        if ms is None:
            print(f"  {module:18s} not installed")
            continue
        figures.setdefault("import_ms", {})[module] = ms - baseline
        print(f"  {module:18s} {ms - baseline:7.1f} ms")

    print("\n3. end to end: track() -> local collector in another process")
    n = 50_000 if args.quick else 200_000
    limited, _ = throughput(20_000, 100.0, 1, advertised=100)
    lifted, delivered = throughput(n, 100_000.0, 3 if not args.quick else 1, advertised=1_000_000)
    print(f"  service limit honoured (100 req/s): {limited:9,.0f} events/s (ceiling 10,000)")
    print(
        f"  limit lifted:                       {lifted:9,.0f} events/s ({delivered:,} delivered)"
    )
    figures["e2e_events_per_s"] = {"limited": limited, "lifted": lifted}

    print("\n4. worker cost per event: JSON encoding")
    enc = encoding_cost(rounds)
    for label, cost in enc.items():
        print(f"  {label:14s} {cost:6.2f} us/event")
    figures["encode_us"] = enc

    print("\n5. memory: 1,000,000 track() calls with the network down (max_queue_size=10,000)")
    before, at_100k, after, queued, dropped = memory_network_down()
    print(
        f"  RSS {before:.1f} MB at start, {at_100k:.1f} MB after 100,000 calls, "
        f"{after:.1f} MB after 1,000,000; queued {queued:,}, dropped (queue full) {dropped:,}"
    )
    figures["memory"] = {
        "rss_start_mb": before,
        "rss_100k_mb": at_100k,
        "rss_1m_mb": after,
        "queued": queued,
        "dropped": dropped,
    }

    if args.json:
        print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--sdk-process":
        sys.exit(sdk_process(sys.argv[2], sys.argv[3], int(sys.argv[4])))
    sys.exit(main())
