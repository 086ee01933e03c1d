"""Requests per second of a hello-world view with and without each Outlit integration.

    python benchmarks/frameworks.py                  # Django, Flask (gunicorn) and FastAPI (uvicorn)
    python benchmarks/frameworks.py --seconds 3 --rounds 5 --only flask
    python benchmarks/frameworks.py --shared --rounds 10 --restarts 2   # all at once, one CPU
    python benchmarks/frameworks.py --shared --only django --variant outlit   # fewer servers

For each framework, servers run side by side on 127.0.0.1, one worker each: the plain app, and
the same app with the integration and one request-bound ``track()`` per request
(``benchmarks/apps/*_hello.py``); for FastAPI also the integration's middleware instead of its
dependency, and a do-nothing dependency (what any ``Depends`` costs FastAPI itself); for
Django also a do-nothing middleware (what any middleware costs Django itself); for Flask also
a view that reads one attribute of ``g`` (what reading ``g.outlit`` costs Flask itself).
``django-project`` is Django again, in the project ``django-admin startproject`` writes (its
apps and seven middleware) instead of Django alone. A load
generator (``wrk`` when installed, else a small threaded keep-alive client) hits them in
alternating rounds, so machine noise falls on all alike; the figures are the medians of the
rounds, and each cost is the median of each round's own ratio against the plain app (the
variants of a round ran seconds apart, under the same noise).

Two costs per variant: fewer requests per second, and more server CPU time per request (time
on the CPU of the server's processes, the outlit worker thread included, over the requests
served). On a shared VM the first swings with the CPU time stolen by neighbours; the second
does not count stolen time, but on the development VM it still swings by several points
between runs (a saturated one-worker server serves 1 / CPU-per-request requests per second).
Tracked events go, in its own process, to benchmarks/sink.py (default), which counts them and
notices duplicates at a fraction of the collector's CPU (on two cores, the receiver's CPU is
taken from the server under test; in production it is the service's), or to the local
collector with ``--receiver collector``. ``--pin`` gives the servers CPU 0 to themselves and
puts the load generator and the receiver on CPU 1 (taskset).

``--shared`` measures differently: every variant of a framework and a second plain server run
at the same time on CPU 0, each loaded by its own load generator, each in its own session so
that the scheduler gives each the same share of the CPU. Whatever slows the machine slows them
all in the same seconds, so the rounds agree far better than one server at a time does; the
second plain server shows what is left (two processes of the same code). It charges each
integration more than it costs a server alone on a CPU, since the servers evict each other's
caches. ``--variant`` keeps only the named variants beside the two plain servers.
benchmarks/instructions.py counts the same servers' instructions per request under valgrind:
a figure that does not move with the machine's noise.
With more than one server start (``--restarts``), each median is followed by a 95% interval
in brackets, from resampling whole starts (rounds of one start share its processes' luck):
what the run can tell about the cost, as against one round's spread.
Bar from the issues: at most 5% fewer requests per second (goal: 2%).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# framework -> (server, {variant: app}); "plain" first, every other variant compared with it.
FRAMEWORKS: dict[str, tuple[str, dict[str, str]]] = {
    "django": (
        "gunicorn",
        {
            "plain": "benchmarks.apps.django_hello:application_plain",
            "outlit": "benchmarks.apps.django_hello:application_outlit",
            "outlit-pure": "benchmarks.apps.django_hello:application_outlit",
            "empty-middleware": "benchmarks.apps.django_hello:application_middleware",
        },
    ),
    # The same, in the project `django-admin startproject` writes (seven middleware).
    "django-project": (
        "gunicorn",
        {
            "plain": "benchmarks.apps.django_hello:application_project_plain",
            "outlit": "benchmarks.apps.django_hello:application_project_outlit",
        },
    ),
    "flask": (
        "gunicorn",
        {
            "plain": "benchmarks.apps.flask_hello:app_plain",
            "outlit": "benchmarks.apps.flask_hello:app_outlit",
            "outlit-pure": "benchmarks.apps.flask_hello:app_outlit",
            "g-attribute": "benchmarks.apps.flask_hello:app_g_attribute",
        },
    ),
    "fastapi": (
        "uvicorn",
        {
            "plain": "benchmarks.apps.fastapi_hello:app_plain",
            "outlit": "benchmarks.apps.fastapi_hello:app_outlit",
            "outlit-middleware": "benchmarks.apps.fastapi_hello:app_middleware",
            "empty-depends": "benchmarks.apps.fastapi_hello:app_empty_depends",
        },
    ),
}
# Counted by benchmarks/instructions.py only: outlit set up, on a request that does not track.
UNTRACKED: dict[str, dict[str, str]] = {
    "django": {"outlit-untracked": "benchmarks.apps.django_hello:application_untracked"},
    "django-project": {
        "outlit-untracked": "benchmarks.apps.django_hello:application_project_untracked"
    },
    "flask": {"outlit-untracked": "benchmarks.apps.flask_hello:app_untracked"},
    "fastapi": {"outlit-untracked": "benchmarks.apps.fastapi_hello:app_middleware_untracked"},
}

VARIANT_NOTES = {
    "outlit": "Depends(outlit) or the framework's own hook, one track()",
    "outlit-pure": "the same, without the compiled fast paths (OUTLIT_PURE_PYTHON=1)",
    "outlit-middleware": "OutlitMiddleware, request.state.outlit, one track()",
    "outlit-untracked": "outlit set up (FastAPI: OutlitMiddleware), a request that tracks nothing",
    "empty-depends": "a do-nothing Depends, no outlit: FastAPI's own cost",
    "empty-middleware": "a do-nothing middleware, no outlit: Django's own cost",
    "g-attribute": "the view reads one attribute of g, no outlit: Flask's own cost of g.outlit's read",
    "plain-2": "a second plain server: what the method cannot tell apart",
}


# Environment a variant's server gets on top of server_env().
VARIANT_ENV: dict[str, dict[str, str]] = {"outlit-pure": {"OUTLIT_PURE_PYTHON": "1"}}


def variant_env(env: dict[str, str], variant: str) -> dict[str, str]:
    return {**env, **VARIANT_ENV.get(variant, {})}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(
    url: str, proc: subprocess.Popen[bytes], timeout: float = 30, status: int = 200
) -> None:
    """Return once ``url`` answers with ``status``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server for {url} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == status:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code == status:
                return
            time.sleep(0.1)
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


def start_server(
    server: str,
    target: str,
    port: int,
    env: dict[str, str],
    prefix: list[str] | None = None,
    ready_timeout: float = 30,
    ready: tuple[str, int] = ("/", 200),
) -> subprocess.Popen[bytes]:
    """``server`` serving ``target`` on 127.0.0.1:``port``, one worker, answering: ``ready``
    is the path asked for until it answers and the status it must answer with.

    ``prefix`` runs it under another command (benchmarks/instructions.py: valgrind)."""
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
        if prefix and prefix[0] == "valgrind":
            args[3:3] = ["--timeout", "0"]  # slowed down: no heartbeat deadline
    else:
        args = [
            sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port),
            "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
    proc = subprocess.Popen(
        [*(prefix or []), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: stop() can kill the workers too
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}{ready[0]}", proc, ready_timeout, ready[1])
    except BaseException:
        stop(proc)
        raise
    return proc


def stop(proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """SIGTERM, then after ``timeout`` seconds SIGKILL to the whole process group (a
    gunicorn arbiter's workers included: every process here starts its own session)."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# --pin: the server under test gets CPU 0 to itself; the load generator and the receiver of
# the events share CPU 1 (set in main()).
SERVER_CPU: list[str] = []
CLIENT_CPU: list[str] = []


def load_wrk(url: str, seconds: float, connections: int) -> tuple[float, int]:
    """(requests per second, requests answered)."""
    out = subprocess.run(
        [*CLIENT_CPU, "wrk", "-t1", f"-c{connections}", f"-d{max(round(seconds), 1)}s", url],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
    ).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    if not rate or not count:
        raise RuntimeError(f"unexpected wrk output: {out}")
    return float(rate.group(1)), int(count.group(1))


def load_python(url: str, seconds: float, connections: int) -> tuple[float, int]:
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
    return done / (time.monotonic() - started), done


def _family(pid: int) -> set[int]:
    """``pid`` and its living descendants (Linux /proc; empty elsewhere)."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return set()
    parents: dict[int, int] = {}
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as file:
                # The command name may hold spaces: the fields follow its closing parenthesis.
                parents[int(name)] = int(file.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
    family = {pid}
    grew = True
    while grew:
        grew = False
        for child, parent in parents.items():
            if parent in family and child not in family:
                family.add(child)
                grew = True
    return family


def run_seconds(pid: int) -> float:
    """Seconds ``pid`` and its descendants have spent on a CPU so far, every thread included,
    in nanoseconds' precision: the scheduler's own count in /proc/*/task/*/schedstat (user and
    system time in /proc/*/stat go by 10 ms ticks, too coarse for a few seconds of load).
    Threads and children that exited are not counted: the servers' workers live for the whole
    run. 0 where there is no /proc."""
    total = 0
    for member in _family(pid):
        try:
            tasks = os.listdir(f"/proc/{member}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{member}/task/{task}/schedstat") as file:
                    total += int(file.read().split()[0])
            except (OSError, ValueError, IndexError):
                continue
    return total / 1e9


def start_collector(receiver: str = "collector") -> tuple[subprocess.Popen[bytes], str]:
    """The events' receiver in its own process on a free loopback port, ready: (process, url).

    ``"collector"`` is the local collector (validates and stores every event); ``"sink"`` is
    benchmarks/sink.py, which only counts them, for a fraction of the collector's CPU."""
    port = free_port()
    if receiver == "sink":
        command = [sys.executable, os.path.join(ROOT, "benchmarks", "sink.py"), "--port", str(port)]
    else:
        command = [
            sys.executable, "-c",
            "import sys; from outlit._collector.server import main; sys.exit(main(sys.argv[1:]))",
            "--port", str(port), "--memory", "--quiet",
        ]  # fmt: skip
    collector = subprocess.Popen(
        [*CLIENT_CPU, *command],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{url}/healthz", collector)
    except BaseException:
        stop(collector)
        raise
    return collector, url


def server_env(collector_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "OUTLIT_API_HOST": collector_url,
        "OUTLIT_PUBLIC_KEY": "pk_bench",
        "PYTHONPATH": ROOT,
        # The same string hashes in every server: with random seeds, dict layouts (and so
        # speed) differ from one process to the next, a bias no number of rounds removes.
        "PYTHONHASHSEED": "0",
    }


def collector_counts(url: str) -> tuple[int, int]:
    """(events stored, ingest requests) so far."""
    with urllib.request.urlopen(f"{url}/api/stats", timeout=5) as response:
        stats = json.load(response)
    return int(stats["events_stored"]), int(stats["ingest_requests"])


def sessions(names: list[str], rounds: int, restarts: int) -> list[tuple[list[str], int]]:
    """Each server session's start order and number of rounds.

    A server process can run the same code several percent faster or slower than another
    (placement, memory layout): with --restarts, each variant gets fresh processes, started in
    a rotated order, and the rounds are shared among them."""
    count = max(1, min(restarts, rounds))
    return [
        (names[n % len(names) :] + names[: n % len(names)], rounds // count + (n < rounds % count))
        for n in range(count)
    ]


def start_servers(
    server: str, targets: dict[str, str], names: list[str], env: dict[str, str]
) -> tuple[dict[str, subprocess.Popen[bytes]], dict[str, str]]:
    """Start ``names`` (keys of ``targets``) in that order: their processes and URLs. A
    failure stops the ones already started."""
    procs: dict[str, subprocess.Popen[bytes]] = {}
    urls: dict[str, str] = {}
    try:
        for variant in names:
            port = free_port()
            procs[variant] = start_server(
                server, targets[variant], port, variant_env(env, variant), prefix=SERVER_CPU
            )
            urls[variant] = f"http://127.0.0.1:{port}/"
    except BaseException:
        for proc in procs.values():
            stop(proc)
        raise
    return procs, urls


def load_together(
    load: Callable[[str, float, int], tuple[float, int]],
    urls: dict[str, str],
    seconds: float,
    connections: int,
) -> dict[str, int]:
    """Load every server at the same time, one load generator each: requests answered."""
    answered: dict[str, int] = {}

    def hit(variant: str) -> None:
        answered[variant] = load(urls[variant], seconds, connections)[1]

    threads = [threading.Thread(target=hit, args=(variant,)) for variant in urls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answered


def shared_cpu(
    server: str,
    targets: dict[str, str],
    env: dict[str, str],
    load: Callable[[str, float, int], tuple[float, int]],
    args: argparse.Namespace,
) -> tuple[dict[str, list[tuple[int, float]]], list[int]]:
    """--shared: every variant (and a second plain server) at once on CPU 0, each loaded by
    its own load generator at the same moment. Per variant and round: (requests answered,
    seconds it spent on the CPU); and per round, the number of the server start it ran in.

    Each server starts its own session, and the kernel's scheduler shares a CPU fairly among
    sessions (autogroups): the servers get equal slices of the same CPU in the same seconds,
    so whatever slows the machine (stolen time, frequency, a neighbour) slows them all alike
    and cancels out of their ratios. The second plain server shows what is left: how far two
    processes running the same code can differ under this method."""
    variants = {**targets, "plain-2": targets["plain"]}
    counts: dict[str, list[tuple[int, float]]] = {variant: [] for variant in variants}
    starts: list[int] = []
    for start, (names, session_rounds) in enumerate(
        sessions(list(variants), args.rounds, args.restarts)
    ):
        procs, urls = start_servers(server, variants, names, env)
        try:
            for round_no in range(session_rounds + 1):  # the first round warms up, not counted
                seconds = 1.0 if round_no == 0 else args.seconds
                used = {variant: run_seconds(proc.pid) for variant, proc in procs.items()}
                answered = load_together(load, urls, seconds, args.connections)
                if round_no == 0:
                    continue
                if len(answered) != len(urls):
                    raise RuntimeError("a load generator failed: see the traceback above")
                starts.append(start)
                for variant, proc in procs.items():
                    counts[variant].append(
                        (answered[variant], run_seconds(proc.pid) - used[variant])
                    )
        finally:
            for proc in procs.values():
                stop(proc)  # SIGTERM: the integration flushes what is queued
    return counts, starts


def starts_interval(
    costs: list[float], starts: list[int], resamples: int = 2000
) -> tuple[float, float] | None:
    """A 95% interval for the median of ``costs`` (one per round), resampling whole server
    starts (``starts``: each round's start): rounds of one start share its processes' luck
    (memory layout, placement), so they are not independent of each other. None with fewer
    than two starts. Seeded: the same rounds give the same interval."""
    by_start: dict[int, list[float]] = {}
    for cost, start in zip(costs, starts, strict=True):
        by_start.setdefault(start, []).append(cost)
    if len(by_start) < 2:
        return None
    rng = random.Random(0)
    groups = list(by_start.values())
    medians = sorted(
        statistics.median([cost for group in rng.choices(groups, k=len(groups)) for cost in group])
        for _ in range(resamples)
    )
    return medians[int(resamples * 0.025)], medians[int(resamples * 0.975) - 1]


def interval_text(costs: list[float], starts: list[int] | None) -> str:
    found = starts_interval(costs, starts) if starts else None
    return "" if found is None else f" [95%: {found[0]:+.1f} to {found[1]:+.1f}]"


def report_shared(
    name: str,
    server: str,
    counts: dict[str, list[tuple[int, float]]],
    seconds: float,
    starts: list[int] | None = None,
) -> list[tuple[str, float, float]]:
    """Print --shared figures; (label, req/s cost %, CPU/request cost %) per outlit variant.

    Each round's baseline is the mean of the two plain servers of that round: two processes
    running the same code differ by a point or two (memory layout, placement), and the
    difference between the two is printed as what the method cannot resolve. With
    ``starts`` (each round's server start), each median gets a 95% interval over the starts
    (see starts_interval)."""
    pairs = list(zip(counts["plain"], counts["plain-2"], strict=True))
    base = [(p1 + p2) / 2 for (p1, _), (p2, _) in pairs]
    base_cpu = [(c1 / p1 + c2 / p2) / 2 for (p1, c1), (p2, c2) in pairs]
    print(
        f"{name} ({server}, all variants at once on one CPU): plain "
        f"{statistics.median(base) / seconds:,.0f} req/s on "
        f"{statistics.median(c for _, c in counts['plain']) / seconds:.0%} of the CPU, "
        f"{statistics.median(base_cpu) * 1e6:,.0f} us CPU/request",
        flush=True,
    )
    in_order = [(1 - p2 / p1) * 100 for (p1, _), (p2, _) in pairs]
    aa = sorted(in_order)
    print(
        f"  {'plain-2':18s} two plain servers differ by {statistics.median(aa):+.1f}%"
        f"{interval_text(in_order, starts)} (rounds {aa[0]:+.1f} to {aa[-1]:+.1f})   "
        f"[{VARIANT_NOTES['plain-2']}]",
        flush=True,
    )
    results = []
    for variant, rounds in counts.items():
        if variant.startswith("plain"):
            continue
        # Per round, against the plain servers of the same seconds: fewer requests answered,
        # and more CPU per request (the same figure, freed from any unequal share of the CPU).
        in_order = [(1 - o / b) * 100 for b, (o, _) in zip(base, rounds, strict=True)]
        costs = sorted(in_order)
        cost = statistics.median(costs)
        cpu_costs = [(oc / o / b - 1) * 100 for b, (o, oc) in zip(base_cpu, rounds, strict=True)]
        cpu_cost = statistics.median(cpu_costs)
        if variant.startswith("outlit") and variant not in VARIANT_ENV:
            results.append((f"{name} {variant}", cost, cpu_cost))
        print(
            f"  {variant:18s} {statistics.median(n for n, _ in rounds) / seconds:8,.0f} req/s "
            f"{cost:+6.1f}%{interval_text(in_order, starts)} (rounds {costs[0]:+.1f} to "
            f"{costs[-1]:+.1f})   CPU/request {cpu_cost:+5.1f}%"
            f"{interval_text(cpu_costs, starts)}   [{VARIANT_NOTES.get(variant, '')}]",
            flush=True,
        )
    return results


def chosen_variants(targets: dict[str, str], variants: list[str] | None) -> dict[str, str]:
    """``targets`` reduced to the plain server and ``variants`` (--variant), or all of them."""
    if not variants:
        return targets
    return {
        variant: t for variant, t in targets.items() if variant == "plain" or variant in variants
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one load round")
    parser.add_argument("--rounds", type=int, default=7, help="rounds per variant")
    parser.add_argument(
        "--restarts",
        type=int,
        default=1,
        help="fresh server processes this many times, the rounds shared among them",
    )
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--only", choices=sorted(FRAMEWORKS), action="append")
    parser.add_argument(
        "--variant",
        choices=sorted({v for _, targets in FRAMEWORKS.values() for v in targets} - {"plain"}),
        action="append",
        help="measure only this variant beside the plain server(s) (repeatable): with "
        "--shared, fewer servers take turns on the CPU",
    )
    parser.add_argument("--loader", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument(
        "--receiver",
        choices=["sink", "collector"],
        default="sink",
        help="where events go: benchmarks/sink.py (counts them; default) or the local collector",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="pin the servers to CPU 0 and the load generator and receiver to CPU 1 (taskset)",
    )
    parser.add_argument(
        "--shared",
        action="store_true",
        help="run each framework's variants at the same time, sharing CPU 0 (implies --pin)",
    )
    args = parser.parse_args()
    if args.shared:
        args.pin = True
    if args.pin:
        if not shutil.which("taskset") or (os.cpu_count() or 1) < 2:
            parser.error("--pin needs taskset and at least two CPUs")
        SERVER_CPU[:] = ["taskset", "-c", "0"]
        CLIENT_CPU[:] = ["taskset", "-c", "1"]
        # This process too: it is the load generator when wrk is missing.
        os.sched_setaffinity(0, {1})

    use_wrk = args.loader == "wrk" or (args.loader == "auto" and shutil.which("wrk"))
    load = load_wrk if use_wrk else load_python
    print(f"load generator: {'wrk' if use_wrk else 'python threads'}, {args.connections} connections, "
          f"{args.rounds} x {args.seconds:g}s rounds per variant over {args.restarts} server start(s), "
          "1 server worker each" + (", all variants at once on CPU 0" if args.shared else ""))  # fmt: skip

    collector, collector_url = start_collector(args.receiver)
    print(f"events go to the {args.receiver} on {collector_url}")
    results: list[tuple[str, float, float]] = []
    try:
        env = server_env(collector_url)
        for name in args.only or sorted(FRAMEWORKS):
            server, targets = FRAMEWORKS[name]
            targets = chosen_variants(targets, args.variant)
            if len(targets) == 1:
                print(f"{name}: none of the chosen variants; skipped")
                continue
            before, posts_before = collector_counts(collector_url)
            if args.shared:
                counts, shared_starts = shared_cpu(server, targets, env, load, args)
                results += report_shared(name, server, counts, args.seconds, shared_starts)
                time.sleep(0.5)
                stored, posts = collector_counts(collector_url)
                print(f"  events stored {stored - before:,} in {posts - posts_before:,} requests")
                continue
            rates: dict[str, list[float]] = {variant: [] for variant in targets}
            cpu: dict[str, list[float]] = {variant: [] for variant in targets}
            starts: list[int] = []
            for start, (names, session_rounds) in enumerate(
                sessions(list(targets), args.rounds, args.restarts)
            ):
                procs, urls = start_servers(server, targets, names, env)
                try:
                    for url in urls.values():  # warm-up, not counted
                        load(url, 1.0, args.connections)
                    for round_no in range(session_rounds):
                        order = list(targets) if round_no % 2 == 0 else list(reversed(targets))
                        for variant in order:
                            used = run_seconds(procs[variant].pid)
                            rate, answered = load(urls[variant], args.seconds, args.connections)
                            used = run_seconds(procs[variant].pid) - used
                            rates[variant].append(rate)
                            cpu[variant].append(used / max(answered, 1) * 1e6)
                        starts.append(start)
                finally:
                    for proc in procs.values():
                        stop(proc)  # SIGTERM: the integration flushes what is queued
            time.sleep(0.5)
            stored, posts = collector_counts(collector_url)
            arrived, posts = stored - before, posts - posts_before
            plain_rps = statistics.median(rates["plain"])
            plain_cpu = statistics.median(cpu["plain"])
            print(
                f"{name} ({server}): plain {plain_rps:,.0f} req/s, {plain_cpu:,.0f} us CPU/request",
                flush=True,
            )
            for variant in targets:
                if variant == "plain":
                    continue
                # Each round measures every variant back to back, so they share the machine's
                # noise of that moment: each cost is the median of the rounds' own ratios.
                costs = [
                    (1 - o / p) * 100 for p, o in zip(rates["plain"], rates[variant], strict=True)
                ]
                cost = statistics.median(costs)
                # The middle half of the rounds' costs: how far one round's figure can be off.
                low, _, high = statistics.quantiles(costs, n=4) if len(costs) > 1 else [cost] * 3
                cpu_costs = [
                    (o / p - 1) * 100 for p, o in zip(cpu["plain"], cpu[variant], strict=True)
                ]
                cpu_cost = statistics.median(cpu_costs)
                extra = statistics.median(
                    o - p for p, o in zip(cpu["plain"], cpu[variant], strict=True)
                )
                if variant.startswith("outlit") and variant not in VARIANT_ENV:
                    results.append((f"{name} {variant}", cost, cpu_cost))
                print(
                    f"  {variant:18s} {statistics.median(rates[variant]):8,.0f} req/s "
                    f"{cost:+6.1f}%{interval_text(costs, starts)} (middle half of rounds "
                    f"{low:+.1f} to {high:+.1f})   CPU/request {extra:+6.1f} us "
                    f"({cpu_cost:+5.1f}%{interval_text(cpu_costs, starts)})   "
                    f"[{VARIANT_NOTES.get(variant, '')}]",
                    flush=True,
                )
            print(f"  events stored {arrived:,} in {posts:,} requests", flush=True)
        with urllib.request.urlopen(f"{collector_url}/api/stats", timeout=5) as response:
            stats = json.load(response)
        receiver_extra = ""
        if args.receiver == "collector":
            receiver_extra = (
                f", {stats['rate_limited']} rate-limited, {stats['events_rejected']} rejected"
            )
        print(f"{args.receiver}: {stats['duplicates']} duplicates{receiver_extra}")
    finally:
        stop(collector)
    worst = max(results, key=lambda r: r[1], default=("-", 0.0, 0.0))
    worst_cpu = max(results, key=lambda r: r[2], default=("-", 0.0, 0.0))
    print(
        f"worst cost: {worst[1]:+.1f}% req/s ({worst[0]}), {worst_cpu[2]:+.1f}% CPU/request "
        f"({worst_cpu[0]}); bar: 5%, goal: 2%"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
