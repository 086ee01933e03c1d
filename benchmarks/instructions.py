"""CPU instructions per request of each hello-world server, with and without each integration.

    python benchmarks/instructions.py                 # every framework and variant
    python benchmarks/instructions.py --only flask --requests 500 2500
    python benchmarks/instructions.py --repeat 3      # the median of three, with the range

The same servers and apps as ``benchmarks/frameworks.py`` (gunicorn or uvicorn, one worker,
``benchmarks/apps/*_hello.py``), plus one variant per framework with outlit set up on a
request that does not track (``outlit-untracked``: most of an app's requests), each run under
valgrind's cachegrind, which counts the
instructions the server executes in user space: the web server, the framework, the app and
outlit's background worker thread (which sends the events to the local collector in its own
process, as in production). Each variant is started twice, answers a different number of
requests from one sequential client, and is stopped; the difference between the two counts,
divided by the difference in requests, is what one more request costs. Start-up, warm-up and
shutdown cancel out.

Unlike requests per second on a shared machine, the count does not move with the machine's
load, so a 2% cost is visible as 2%. Single measurements of the same code still differ, by
about 1,000 instructions in 900,000 for Django and FastAPI and up to 10,000 for Flask (threads
interleave differently under valgrind, and the garbage collector's full passes fall
differently): ``--repeat`` reports the median of several, with their range. What it leaves
out: time in the kernel (nearly the same for every variant: the same sockets, plus one HTTP
request per 100 events on outlit's kept-alive connection) and the cost of cache misses. Needs valgrind (``apt-get install valgrind``).
"""

from __future__ import annotations

import argparse
import glob
import http.client
import os
import re
import shutil
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# A sibling script, not a package: found through the sys.path entry above.
from frameworks import (
    FRAMEWORKS,
    UNTRACKED,
    VARIANT_ENV,
    VARIANT_NOTES,
    free_port,
    server_env,
    start_collector,
    start_server,
    stop,
    variant_env,
)


def send_requests(port: int, count: int) -> None:
    """``count`` GET / one after another, on a kept-alive connection when the server keeps it."""
    conn: http.client.HTTPConnection | None = None
    for _ in range(count):
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        conn.request("GET", "/")
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"server answered {response.status}")
        if response.will_close:
            conn.close()
            conn = None
    if conn is not None:
        conn.close()


def count_instructions(server: str, target: str, requests: int, env: dict[str, str]) -> int:
    """Instructions executed by the server process that answered ``requests`` requests, from
    start to exit (gunicorn: its worker, not the arbiter, whose count depends on time)."""
    with tempfile.TemporaryDirectory(prefix="outlit-cachegrind-") as out:
        prefix = [
            "valgrind", "--tool=cachegrind", "--cache-sim=no",
            f"--cachegrind-out-file={out}/cg.%p",
        ]  # fmt: skip
        port = free_port()
        proc = start_server(server, target, port, env, prefix=prefix, ready_timeout=300)
        try:
            send_requests(port, requests)
        finally:
            stop(proc, timeout=300)  # SIGTERM: the integration flushes what is queued
        totals = []
        for path in glob.glob(f"{out}/cg.*"):
            with open(path) as file:
                found = re.search(r"^summary:\s+(\d+)", file.read(), re.M)
            if found:
                totals.append(int(found.group(1)))
        if not totals:
            raise RuntimeError(f"cachegrind wrote no counts for {target}")
        # The process that served the requests executed by far the most instructions.
        return max(totals)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(FRAMEWORKS), action="append")
    parser.add_argument(
        "--requests",
        type=int,
        nargs=2,
        default=(500, 2500),
        metavar=("FEW", "MANY"),
        help="requests in the two runs of each variant (default: 500 2500)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="measure each variant this many times and report the median, with the range "
        "(default: 1)",
    )
    args = parser.parse_args()
    few, many = args.requests
    if args.repeat < 1:
        parser.error("--repeat needs at least 1")
    if not 0 < few < many:
        parser.error("--requests needs 0 < FEW < MANY")
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind): nothing measured")
        return 2

    print(
        f"user-space instructions per request, from runs of {few:,} and {many:,} sequential "
        "requests under cachegrind (one server worker)"
        + (f", median of {args.repeat} measurements [range]" if args.repeat > 1 else "")
    )
    collector, collector_url = start_collector()
    results: list[tuple[str, float]] = []
    try:
        env = server_env(collector_url)
        for name in args.only or sorted(FRAMEWORKS):
            server, tracked = FRAMEWORKS[name]
            targets = {**tracked, **UNTRACKED[name]}
            samples: dict[str, list[float]] = {variant: [] for variant in targets}
            for _ in range(args.repeat):  # the variants take turns, as in frameworks.py
                for variant, target in targets.items():
                    low = count_instructions(server, target, few, variant_env(env, variant))
                    high = count_instructions(server, target, many, variant_env(env, variant))
                    samples[variant].append((high - low) / (many - few))
            per_request = {variant: statistics.median(found) for variant, found in samples.items()}
            plain = per_request["plain"]
            plain_spread = ""
            if args.repeat > 1:
                low_plain, high_plain = (value - plain for value in _range(samples["plain"]))
                plain_spread = f" [{low_plain:+,.0f}..{high_plain:+,.0f}]"
            print(
                f"{name} ({server}): plain {plain:,.0f} instructions/request{plain_spread}",
                flush=True,
            )
            for variant, count in per_request.items():
                if variant == "plain":
                    continue
                cost = (count / plain - 1) * 100
                if variant.startswith("outlit") and variant not in VARIANT_ENV:
                    results.append((f"{name} {variant}", cost))
                spread = ""
                if args.repeat > 1:
                    # Each measurement of the variant against the median of the plain app.
                    low_cost, high_cost = (value - plain for value in _range(samples[variant]))
                    spread = f" [{low_cost:+,.0f}..{high_cost:+,.0f}]"
                print(
                    f"  {variant:18s} {count:11,.0f}  {count - plain:+9,.0f} ({cost:+5.1f}%)"
                    f"{spread}   [{VARIANT_NOTES.get(variant, '')}]",
                    flush=True,
                )
    finally:
        stop(collector)
    worst = max(results, key=lambda r: r[1], default=("-", 0.0))
    print(f"largest cost: {worst[1]:+.1f}% instructions per request ({worst[0]})")
    return 0


def _range(values: list[float]) -> tuple[float, float]:
    return min(values), max(values)


if __name__ == "__main__":
    sys.exit(main())
