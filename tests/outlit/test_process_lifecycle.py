"""Exit and fork behaviour, each in a real subprocess sending to a real collector on 127.0.0.1."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections import Counter

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX-only")


def _run(
    code: str, api_host: str, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "OUTLIT_PUBLIC_KEY": "pk_subprocess",
        "OUTLIT_API_HOST": api_host,
        **env,
    }
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_events_queued_at_exit_are_delivered_without_flush(collector):
    done = _run(
        """
        from outlit import Outlit
        client = Outlit(flush_interval=60)
        for i in range(30):
            client.track(email="exit@example.com", event_name="at_exit", properties={"i": i})
        # no flush(): the interpreter's exit must deliver them
        """,
        collector.url,
    )
    assert done.returncode == 0, done.stderr
    events = collector.wait_for_events(30)
    assert sorted(e["properties"]["i"] for e in events) == list(range(30))


def test_exit_with_the_network_down_is_prompt_and_says_what_was_lost():
    port = _free_port()  # nothing listens here
    started = time.monotonic()
    done = _run(
        """
        from outlit import Outlit
        client = Outlit(flush_interval=60, shutdown_timeout=1.0)
        client.track(email="down@example.com", event_name="lost")
        """,
        f"http://127.0.0.1:{port}",
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert elapsed < 8, f"exit took {elapsed:.1f}s with shutdown_timeout=1"
    assert "1 undelivered events" in done.stderr


def test_several_clients_with_the_network_down_share_one_exit_deadline():
    port = _free_port()  # nothing listens here
    started = time.monotonic()
    done = _run(
        """
        from outlit import Outlit
        clients = [Outlit(flush_interval=60, shutdown_timeout=2.0) for _ in range(4)]
        for client in clients:
            client.track(email="down@example.com", event_name="lost")
        """,
        f"http://127.0.0.1:{port}",
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    # One after another, each would wait its 2 s: 8 s and more.
    assert elapsed < 6, f"exit took {elapsed:.1f}s for 4 clients with shutdown_timeout=2"
    assert done.stderr.count("undelivered events") == 4


def test_the_exit_time_flush_waits_for_a_shutdown_still_running_in_another_thread(collector):
    # The app's own shutdown() runs in a daemon thread when the main thread returns: the
    # exit-time shutdown must wait for it rather than find the client closed and let the
    # interpreter kill that thread mid-flush.
    done = _run(
        """
        import threading
        from outlit import Outlit
        client = Outlit(flush_interval=60, max_requests_per_second=4)  # 3 requests: 0.5 s
        for i in range(300):
            client.track(email="a@x.com", event_name="e", properties={"i": i})
        threading.Thread(target=client.shutdown, daemon=True).start()
        """,
        collector.url,
    )
    assert done.returncode == 0, done.stderr
    events = collector.wait_for_events(300)
    assert sorted(e["properties"]["i"] for e in events) == list(range(300))


def test_a_call_after_the_exit_time_shutdown_does_not_raise_into_the_app(collector):
    # An atexit hook registered before outlit's runs after it (and daemon threads may still
    # track): the app never shut the client down, so its calls are not programmer errors.
    done = _run(
        """
        import atexit
        atexit.register(lambda: print("late:", client.track(email="a@x.com", event_name="late")))
        from outlit import Outlit
        client = Outlit(flush_interval=60)
        client.track(email="a@x.com", event_name="early")
        """,
        collector.url,
    )
    assert done.returncode == 0, done.stderr
    assert "late: None" in done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    assert [e["eventName"] for e in collector.wait_for_events(1)] == ["early"]


def test_forked_child_sends_its_own_events_and_never_the_parents(collector):
    done = _run(
        """
        import os
        from outlit import Outlit
        client = Outlit(flush_interval=60)
        for i in range(5):
            client.track(email="parent@example.com", event_name="parent", properties={"i": i})
        pid = os.fork()
        if pid == 0:
            # The parent's 5 queued events stay the parent's.
            assert client.queue_size == 0, client.queue_size
            for i in range(3):
                client.track(email="child@example.com", event_name="child", properties={"i": i})
            assert client.flush(timeout=10)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert client.flush(timeout=10)
        """,
        collector.url,
    )
    assert done.returncode == 0, done.stderr
    events = collector.wait_for_events(8)
    time.sleep(0.2)
    events = collector.events()
    assert Counter(e["eventName"] for e in events) == {"parent": 5, "child": 3}
    assert max(Counter(e["uuid"] for e in events).values()) == 1


@pytest.mark.skipif(
    importlib.util.find_spec("gevent") is None, reason="gevent is not installed (dev extra)"
)
def test_a_fork_during_the_first_request_does_not_wait_for_its_answer(collector):
    # fork() waits for the imports of a first request under way, not for its network wait:
    # a server forking workers while the collector is slow must not stall for `timeout`.
    collector.latency = 3.0
    done = _run(
        """
        import os, threading, time
        from outlit import Outlit
        client = Outlit(flush_interval=60, timeout=10)
        client.track(email="a@x.com", event_name="first")
        threading.Thread(target=client.flush, daemon=True).start()
        time.sleep(1.0)  # the first request is now waiting for the collector's answer
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        took = time.monotonic() - started
        os.waitpid(pid, 0)
        print(f"fork took {took:.2f} s")
        assert client.flush(timeout=10)
        """,
        collector.url,
    )
    assert done.returncode == 0, done.stderr
    took = float(done.stdout.split("fork took ")[1].split(" s")[0])
    assert took < 1.0, f"fork() waited {took:.1f} s for the first request's answer"
    assert [e["eventName"] for e in collector.wait_for_events(1)] == ["first"]


def test_first_calls_in_a_gevent_patched_fork_child_do_not_deadlock(collector):
    # gunicorn --preload -k gevent: the client is made before fork, the child patches threading
    # after fork, and greenlets make their first calls at once. One of them starting the worker
    # used to hold a lock made at fork (a real OS lock) across Thread.start(), which lets the
    # others run: the next one blocked the whole process.
    done = _run(
        """
        import os
        from outlit import Outlit
        client = Outlit(flush_interval=60)
        pid = os.fork()
        if pid == 0:
            import signal
            signal.alarm(30)  # a deadlocked child must not outlive the test
            from gevent import monkey
            monkey.patch_all()
            import gevent
            calls = [
                gevent.spawn(client.track, user_id=str(i), event_name="greenlet")
                for i in range(8)
            ]
            finished = gevent.joinall(calls, timeout=10)
            assert len(finished) == 8, f"{len(finished)} of 8 calls returned"
            assert client.flush(timeout=10)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status
        """,
        collector.url,
        timeout=40,
    )
    assert done.returncode == 0, done.stderr
    events = collector.wait_for_events(8)
    assert sorted(e["userId"] for e in events) == [str(i) for i in range(8)]


def test_client_made_before_fork_works_in_multiprocessing_workers(collector):
    done = _run(
        """
        import multiprocessing as mp
        from outlit import Outlit
        client = Outlit(flush_interval=0.05)
        client.track(email="boot@example.com", event_name="preload")  # starts the parent's worker

        def job(n):
            for i in range(10):
                client.track(user_id=f"w{n}", event_name="job_done", properties={"i": i})
            return bool(client.flush(timeout=10))

        if __name__ == "__main__":
            with mp.get_context("fork").Pool(3) as pool:
                assert all(pool.map(job, range(6)))
            assert client.flush(timeout=10)
        """,
        collector.url,
    )
    assert done.returncode == 0, done.stderr
    events = collector.wait_for_events(61)
    names = Counter(e["eventName"] for e in events)
    assert names == {"job_done": 60, "preload": 1}
    assert max(Counter(e["uuid"] for e in events).values()) == 1


@pytest.mark.parametrize("start", ["fork", "forkserver", "spawn"])
def test_a_multiprocessing_child_delivers_at_exit_without_flush(collector, start, tmp_path):
    # A multiprocessing child ends with os._exit(), which skips atexit: delivery must not
    # depend on the job calling flush(). (A file: spawned children import the main module.)
    script = tmp_path / "children.py"
    script.write_text(
        textwrap.dedent(
            f"""
        import multiprocessing as mp
        from outlit import Outlit

        def job(n):
            client = Outlit(flush_interval=60)
            for i in range(5):
                client.track(user_id=f"w{{n}}", event_name="child_exit", properties={{"i": i}})

        if __name__ == "__main__":
            context = mp.get_context("{start}")
            processes = [context.Process(target=job, args=(n,)) for n in range(2)]
            for process in processes:
                process.start()
            for process in processes:
                process.join(30)
                assert process.exitcode == 0, process.exitcode
        """
        )
    )
    done = _run(
        f"import runpy; runpy.run_path({str(script)!r}, run_name='__main__')", collector.url
    )
    assert done.returncode == 0, done.stderr
    events = collector.wait_for_events(10)
    assert Counter(e["userId"] for e in events) == {"w0": 5, "w1": 5}
    assert max(Counter(e["uuid"] for e in events).values()) == 1


def test_an_inherited_client_delivers_at_a_pool_workers_exit_without_flush(collector):
    done = _run(
        """
        import multiprocessing as mp
        from outlit import Outlit
        client = Outlit(flush_interval=60)
        client.track(email="boot@example.com", event_name="preload")  # running before fork

        def job(n):
            client.track(user_id=f"w{n}", event_name="pooled")

        if __name__ == "__main__":
            with mp.get_context("fork").Pool(2, maxtasksperchild=1) as pool:
                pool.map(job, range(4))
                pool.close()
                pool.join()
        """,
        collector.url,
    )
    assert done.returncode == 0, done.stderr
    events = collector.wait_for_events(5)
    assert Counter(e["eventName"] for e in events) == {"pooled": 4, "preload": 1}
    assert max(Counter(e["uuid"] for e in events).values()) == 1


def test_a_client_nobody_references_still_sends_and_flushes_at_exit(collector):
    done = _run(
        """
        import gc
        import threading
        from outlit import Outlit

        def tracked_somewhere():
            client = Outlit(flush_interval=60)
            for i in range(3):
                client.track(email="gone@example.com", event_name="orphan", properties={"i": i})

        for _ in range(4):
            tracked_somewhere()
        gc.collect()
        workers = [t for t in threading.enumerate() if t.name == "outlit-worker"]
        assert len(workers) == 4, workers  # each still running, holding its events
        """,
        collector.url,
    )
    assert done.returncode == 0, done.stderr
    events = collector.wait_for_events(12)
    assert Counter(e["properties"]["i"] for e in events) == {0: 4, 1: 4, 2: 4}
    assert max(Counter(e["uuid"] for e in events).values()) == 1
