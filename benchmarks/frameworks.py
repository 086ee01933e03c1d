"""Requests per second of a hello-world view with and without each Outlit integration.

    python benchmarks/frameworks.py                  # Django, Flask (gunicorn) and FastAPI (uvicorn)
    python benchmarks/frameworks.py --seconds 3 --rounds 5 --only flask

For each framework, two servers run side by side on 127.0.0.1, one worker each: the plain app,
and the same app with the integration and one request-bound ``track()`` per request
(``benchmarks/apps/*_hello.py``). A load generator (``wrk`` when installed, else a small
threaded keep-alive client) hits them in alternating rounds, so machine noise falls on both
alike; the figures are the medians of the rounds, and the cost is the median of each round's
own ratio (its two variants ran seconds apart, under the same noise).
Tracked events go to the local collector in its own process, which checks that they arrived.
Bar from the issues: at most 5% fewer requests per second (goal: 2%).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FRAMEWORKS = {
    "django": (
        "gunicorn",
        "benchmarks.apps.django_hello:application_plain",
        "benchmarks.apps.django_hello:application_outlit",
    ),
    "flask": (
        "gunicorn",
        "benchmarks.apps.flask_hello:app_plain",
        "benchmarks.apps.flask_hello:app_outlit",
    ),
    "fastapi": (
        "uvicorn",
        "benchmarks.apps.fastapi_hello:app_plain",
        "benchmarks.apps.fastapi_hello:app_outlit",
    ),
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server for {url} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


def start_server(
    server: str, target: str, port: int, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    if server == "gunicorn":
        # Each server its own control socket: recent gunicorn shares one default path.
        control = os.path.join(tempfile.gettempdir(), f"outlit-bench-gunicorn-{port}.ctl")
        args = [sys.executable, "-m", "gunicorn", "-w", "1", "-b", f"127.0.0.1:{port}", target]
        if (
            "--control-socket"
            in subprocess.run(
                [sys.executable, "-m", "gunicorn", "--help"], capture_output=True, text=True
            ).stdout
        ):
            args[3:3] = ["--control-socket", control]
    else:
        args = [
            sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port),
            "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
    proc = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_ready(f"http://127.0.0.1:{port}/", proc)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def load_wrk(url: str, seconds: float, connections: int) -> float:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{max(round(seconds), 1)}s", url],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match:
        raise RuntimeError(f"unexpected wrk output: {out}")
    return float(match.group(1))


def load_python(url: str, seconds: float, connections: int) -> float:
    """Threads, each with one keep-alive connection (reconnecting when the server closes)."""
    host, port = url.split("//")[1].strip("/").split(":")
    done = 0
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker() -> None:
        nonlocal done
        count = 0
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        while time.monotonic() < deadline:
            try:
                conn.request("GET", "/")
                response = conn.getresponse()
                response.read()
                if response.status == 200:
                    count += 1
                if response.getheader("connection", "").lower() == "close":
                    conn.close()
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.close()
        with lock:
            done += count

    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return done / (time.monotonic() - started)


def collector_counts(url: str) -> tuple[int, int]:
    """(events stored, ingest requests) so far."""
    with urllib.request.urlopen(f"{url}/api/stats", timeout=5) as response:
        stats = json.load(response)
    return int(stats["events_stored"]), int(stats["ingest_requests"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one load round")
    parser.add_argument("--rounds", type=int, default=7, help="rounds per variant")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--only", choices=sorted(FRAMEWORKS), action="append")
    parser.add_argument("--loader", choices=["auto", "wrk", "python"], default="auto")
    args = parser.parse_args()

    use_wrk = args.loader == "wrk" or (args.loader == "auto" and shutil.which("wrk"))
    load = load_wrk if use_wrk else load_python
    print(f"load generator: {'wrk' if use_wrk else 'python threads'}, {args.connections} connections, "
          f"{args.rounds} x {args.seconds:g}s rounds per variant, 1 server worker each")  # fmt: skip

    collector_port = free_port()
    collector = subprocess.Popen(
        [
            sys.executable, "-c",
            "import sys; from outlit._collector.server import main; sys.exit(main(sys.argv[1:]))",
            "--port", str(collector_port), "--memory", "--quiet",
        ],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    collector_url = f"http://127.0.0.1:{collector_port}"
    results = []
    try:
        wait_ready(f"{collector_url}/healthz", collector)
        env = {
            **os.environ,
            "OUTLIT_API_HOST": collector_url,
            "OUTLIT_PUBLIC_KEY": "pk_bench",
            "PYTHONPATH": ROOT,
        }
        for name in args.only or sorted(FRAMEWORKS):
            server, plain_target, outlit_target = FRAMEWORKS[name]
            plain_port, outlit_port = free_port(), free_port()
            plain = start_server(server, plain_target, plain_port, env)
            tracked = start_server(server, outlit_target, outlit_port, env)
            before, posts_before = collector_counts(collector_url)
            samples: dict[str, list[float]] = {"plain": [], "outlit": []}
            try:
                urls = {
                    "plain": f"http://127.0.0.1:{plain_port}/",
                    "outlit": f"http://127.0.0.1:{outlit_port}/",
                }
                for url in urls.values():  # warm-up, not counted
                    load(url, 1.0, args.connections)
                for round_no in range(args.rounds):
                    order = ["plain", "outlit"] if round_no % 2 == 0 else ["outlit", "plain"]
                    for variant in order:
                        samples[variant].append(load(urls[variant], args.seconds, args.connections))
            finally:
                stop(plain)
                stop(tracked)  # SIGTERM: the integration flushes what is queued
            time.sleep(0.5)
            stored, posts = collector_counts(collector_url)
            arrived, posts = stored - before, posts - posts_before
            plain_rps = statistics.median(samples["plain"])
            outlit_rps = statistics.median(samples["outlit"])
            # Each round measures both variants back to back, so the two share the machine's
            # noise of that moment: the cost is the median of the rounds' own ratios.
            cost = statistics.median(
                (1 - o / p) * 100 for p, o in zip(samples["plain"], samples["outlit"], strict=True)
            )
            results.append((name, server, plain_rps, outlit_rps, cost, arrived))
            print(
                f"{name:8s} ({server:8s}) plain {plain_rps:8.0f} req/s   with outlit {outlit_rps:8.0f} req/s"
                f"   cost {cost:+5.1f}%   events stored {arrived:,} in {posts:,} requests",
                flush=True,
            )
        with urllib.request.urlopen(f"{collector_url}/api/stats", timeout=5) as response:
            stats = json.load(response)
        print(
            f"collector: {stats['duplicates']} duplicates, {stats['rate_limited']} rate-limited, "
            f"{stats['events_rejected']} rejected"
        )
    finally:
        stop(collector)  # type: ignore[arg-type]
    worst = max((r[4] for r in results), default=0.0)
    print(f"worst cost: {worst:+.1f}% (bar: 5%, goal: 2%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
