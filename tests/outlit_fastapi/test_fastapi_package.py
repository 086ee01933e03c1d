"""What users import: the public names, the type marker, and the benchmark apps the framework
benchmark drives."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from fastapi.testclient import TestClient

import outlit_fastapi
from outlit._collector.server import Collector


def _isort_order(name: str) -> tuple[int, str]:
    # ruff's RUF022 order: CONSTANTS, then Classes, then functions.
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def test_public_names_are_sorted_and_importable():
    assert outlit_fastapi.__all__ == sorted(outlit_fastapi.__all__, key=_isort_order)
    for name in outlit_fastapi.__all__:
        assert getattr(outlit_fastapi, name) is not None, name
    assert outlit_fastapi.BoundTracker is importlib.import_module("outlit").BoundTracker


def test_package_ships_its_type_marker():
    assert (Path(outlit_fastapi.__file__).parent / "py.typed").is_file()


def test_benchmark_apps_answer_alike_and_only_the_outlit_ones_track(
    collector: Collector, monkeypatch
):
    # The lead's benchmark runs uvicorn from the repository root; so does this import.
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))
    monkeypatch.setenv("OUTLIT_API_HOST", collector.url)
    monkeypatch.delenv("OUTLIT_PUBLIC_KEY", raising=False)
    sys.modules.pop("benchmarks.apps.fastapi_hello", None)
    hello = importlib.import_module("benchmarks.apps.fastapi_hello")
    try:
        assert TestClient(hello.app_plain).get("/").json() == {"hello": "world"}
        assert hello.outlit.queue_size == 0
        with TestClient(hello.app_outlit) as client:
            assert client.get("/").json() == {"hello": "world"}
        (event,) = collector.wait_for_events(1, timeout=5)
        assert (event["eventName"], event["userId"]) == ("hello_served", "bench-user")
        assert collector.requests[-1].public_key == "pk_bench"
        # The reference variants: the middleware tracks alike, the empty dependency not at all.
        assert TestClient(hello.app_empty_depends).get("/").json() == {"hello": "world"}
        with TestClient(hello.app_middleware) as client:
            assert client.get("/").json() == {"hello": "world"}
        events = collector.wait_for_events(2, timeout=5)
        assert [(e["eventName"], e["userId"]) for e in events] == [
            ("hello_served", "bench-user")
        ] * 2
    finally:
        hello.outlit.client.shutdown(timeout=2)
        sys.modules.pop("benchmarks.apps.fastapi_hello", None)
