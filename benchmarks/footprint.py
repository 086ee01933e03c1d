"""Cache lines a hello-world request touches when the caches are cold, with and without outlit.

    python benchmarks/footprint.py                   # Django and Flask, every variant
    python benchmarks/footprint.py --only django --requests 1000

``benchmarks/frameworks.py`` finds outlit costing a server more CPU time per request than its
instructions account for (``benchmarks/instructions.py``). This counts the other part: memory.
On a busy server the kernel's network path, the other processes and (on a shared VM) the
neighbours evict a request's cache lines before the next request, so every line the request
touches is a trip to a farther cache or to memory, tens to a hundred nanoseconds each, while
an instruction takes about half a nanosecond.

Each variant's WSGI app (``benchmarks/apps``, the apps that ``frameworks.py`` serves) is called
in a loop in one process, without a server, under valgrind's cachegrind with its cache
simulation: 32 KiB first-level caches and a 512 KiB last-level cache (the size of this VM's
per-core L2). After each request the loop copies 1 MiB, which evicts the simulated caches; the
last-level misses per request (instructions and data) are then the lines the request touches
from cold. Two runs per variant (N and 3N requests) give the cost of one more request; the
copy's own misses (a run with no app) are subtracted. The hash seed is fixed, so a count
repeats within a few lines. Only the request's own thread is measured: outlit's queue is
emptied every 50 events, before the worker would wake for a batch (its thread never starts).
Peer SDKs are compared in ``benchmarks/track_overhead.py``; this one compares each integration
with its framework alone. Needs valgrind (``apt-get install valgrind``).
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import subprocess
import sys
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# framework -> [(variant, WSGI app in benchmarks/apps, extra environment)]; "plain" first.
VARIANTS: dict[str, list[tuple[str, str, dict[str, str]]]] = {
    "django": [
        ("plain", "benchmarks.apps.django_hello:application_plain", {}),
        ("empty-middleware", "benchmarks.apps.django_hello:application_middleware", {}),
        ("outlit-untracked", "benchmarks.apps.django_hello:application_untracked", {}),
        ("outlit", "benchmarks.apps.django_hello:application_outlit", {}),
        (
            "outlit-pure",
            "benchmarks.apps.django_hello:application_outlit",
            {"OUTLIT_PURE_PYTHON": "1"},
        ),
    ],
    "flask": [
        ("plain", "benchmarks.apps.flask_hello:app_plain", {}),
        ("g-attribute", "benchmarks.apps.flask_hello:app_g_attribute", {}),
        ("outlit-untracked", "benchmarks.apps.flask_hello:app_untracked", {}),
        ("outlit", "benchmarks.apps.flask_hello:app_outlit", {}),
        ("outlit-pure", "benchmarks.apps.flask_hello:app_outlit", {"OUTLIT_PURE_PYTHON": "1"}),
    ],
}
EVICT_BYTES = 1 << 20  # twice the simulated last-level cache
CACHES = ["--I1=32768,8,64", "--D1=32768,8,64", "--LL=524288,8,64"]
NOTHING = "-"  # the target of the run that only evicts: its misses are subtracted


def serve_in_a_loop(target: str, requests: int) -> None:
    """The child: ``requests`` requests to ``target`` after a warm-up, each followed by the
    eviction. Runs under valgrind."""
    sys.path.insert(0, ROOT)
    from outlit import Outlit
    from outlit._worker import Worker

    Worker.start = lambda self: True  # type: ignore[method-assign]  # the request thread only
    if target == NOTHING:
        app: Any = lambda environ, start_response: [b""]  # noqa: E731
    else:
        module, name = target.split(":")
        app = getattr(__import__(module, fromlist=[name]), name)
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
    }

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        pass

    def one() -> None:
        response = app(dict(environ), start_response)
        b"".join(response)
        close = getattr(response, "close", None)
        if close is not None:
            close()

    for _ in range(200):  # warm-up: the client exists, lazy imports are done
        one()
    import gc

    # Each client's queue once (outlit_django's lazy proxy is an Outlit too, with its queue).
    queues = list(
        {id(o._queue): o._queue for o in gc.get_objects() if isinstance(o, Outlit)}.values()
    )
    for queue in queues:
        queue.clear()  # the warm-up's events
    source, copy = bytes(EVICT_BYTES), bytearray(EVICT_BYTES)
    cleared = 0
    for _ in range(requests):
        one()
        for queue in queues:
            if len(queue) >= 50:
                cleared += len(queue)
                queue.clear()
        copy[:] = source
    cleared += sum(len(queue) for queue in queues)
    print(f"{requests} requests, {cleared} events queued in {len(queues)} queue(s)", flush=True)
    os._exit(0)  # no exit-time flush: it would count


def measure(target: str, requests: int, env: dict[str, str]) -> tuple[int, int]:
    """(instructions, last-level misses) of one run of ``requests`` requests."""
    command = [
        "valgrind", "--tool=cachegrind", "--cache-sim=yes", *CACHES,
        "--cachegrind-out-file=/dev/null",
        sys.executable, os.path.abspath(__file__), "--child", target, str(requests),
    ]  # fmt: skip
    child_env = {**os.environ, "PYTHONHASHSEED": "0", **env}
    child_env.setdefault("OUTLIT_API_HOST", "http://127.0.0.1:9")  # nothing is ever sent
    done = subprocess.run(command, capture_output=True, text=True, env=child_env, cwd=ROOT)
    counts = {}
    for name in ("I   refs", "LLi misses", "LLd misses"):
        found = re.search(rf"{name}:\s+([\d,]+)", done.stderr)
        if found is None:
            raise RuntimeError(f"valgrind printed no {name!r} for {target}:\n{done.stderr[-2000:]}")
        counts[name] = int(found.group(1).replace(",", ""))
    return counts["I   refs"], counts["LLi misses"] + counts["LLd misses"]


def per_request(target: str, requests: int, env: dict[str, str]) -> tuple[float, float]:
    few = measure(target, requests, env)
    many = measure(target, 3 * requests, env)
    return tuple((b - a) / (2 * requests) for a, b in zip(few, many, strict=True))  # type: ignore[return-value]


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        serve_in_a_loop(sys.argv[2], int(sys.argv[3]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(VARIANTS), action="append")
    parser.add_argument("--requests", type=int, default=1500, help="N: runs of N and 3N")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind): nothing measured")
        return 0
    print(
        f"cachegrind, caches {' '.join(CACHES)}, {EVICT_BYTES >> 20} MiB copied after each "
        f"request; runs of {args.requests} and {3 * args.requests} requests, in process",
        flush=True,
    )
    evict_instructions, evict_lines = per_request(NOTHING, args.requests, {})
    print(f"the eviction alone: {evict_lines:,.0f} lines per request (subtracted)", flush=True)
    for framework in args.only or sorted(VARIANTS):
        print(f"\n{framework}: per request, instructions and cache lines touched from cold")
        plain: tuple[float, float] | None = None
        for variant, target, env in VARIANTS[framework]:
            instructions, lines = per_request(target, args.requests, env)
            instructions -= evict_instructions
            lines -= evict_lines
            if plain is None:
                plain = (instructions, lines)
                print(f"  {variant:18s} {instructions:10,.0f} instructions {lines:8,.0f} lines")
                continue
            added_i, added_l = instructions - plain[0], lines - plain[1]
            print(
                f"  {variant:18s} {added_i:+10,.0f} instructions ({added_i / plain[0]:+.1%}) "
                f"{added_l:+8,.0f} lines ({added_l / plain[1]:+.1%})",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
