"""The Django hello-world apps of the benchmarks, served by gunicorn as the benchmarks serve
them: each variant must be what its name says (the startproject project's settings and
middleware; the tracked variant sends one event per request, the others none), or the figures
compare the wrong things."""

from __future__ import annotations

import ast
import http.client
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import django
import pytest

# This folder is on sys.path (pytest's default import mode): test_sink is a sibling module.
from test_sink import load_frameworks, stats

frameworks: ModuleType = load_frameworks()
pytestmark = pytest.mark.slow

REQUESTS = 5
APP = "benchmarks.apps.django_hello:"
OUTLIT_MIDDLEWARE = "outlit_django.middleware.OutlitMiddleware"


@pytest.fixture(scope="module")
def sink() -> Iterator[str]:
    process, url = frameworks.start_collector("sink")
    try:
        yield url
    finally:
        frameworks.stop(process)


def ready_on_a_missing_page(url: str, proc: Any, timeout: float = 30) -> None:
    """frameworks.wait_ready, but asking for a page that does not exist: Django answers 404
    without running the view, so the check tracks nothing (a check that timed out is still
    answered later, and would have tracked an event nobody counted)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"server for {url} exited with {proc.returncode}"
        try:
            urllib.request.urlopen(url + "no-such-page", timeout=1).close()
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout}s")


def serve(
    sink: str, name: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[dict[str, str]], int]:
    """Start gunicorn on ``name``, send REQUESTS requests, stop it (SIGTERM: outlit flushes):
    (each response's headers, events the sink stored meanwhile)."""
    monkeypatch.setattr(frameworks, "wait_ready", ready_on_a_missing_page)
    before = stats(sink)["events_stored"]
    port = frameworks.free_port()
    server = frameworks.start_server("gunicorn", APP + name, port, frameworks.server_env(sink))
    headers = []
    try:
        for _ in range(REQUESTS):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/")
            response = conn.getresponse()
            assert (response.status, response.read()) == (200, b"Hello, World!")
            headers.append({k.lower(): v for k, v in response.getheaders()})
            conn.close()
    finally:
        frameworks.stop(server)
    return headers, stats(sink)["events_stored"] - before


def startproject_settings() -> dict[str, list[str]]:
    """INSTALLED_APPS and MIDDLEWARE as the installed Django's startproject writes them."""
    template = os.path.join(
        os.path.dirname(django.__file__), "conf", "project_template", "project_name"
    )
    with open(os.path.join(template, "settings.py-tpl")) as file:
        tree = ast.parse(file.read())
    found = {}
    for node in tree.body:
        if not isinstance(node, ast.Assign):
            continue
        target = node.targets[0]
        if isinstance(target, ast.Name) and target.id in ("INSTALLED_APPS", "MIDDLEWARE"):
            found[target.id] = ast.literal_eval(node.value)
    return found


def configured(name: str) -> dict[str, list[str]]:
    """INSTALLED_APPS and MIDDLEWARE of the variant ``name``, in a process of its own (Django's
    settings are per process)."""
    script = (
        "import json, sys\n"
        f"import benchmarks.apps.django_hello as hello; hello.{name}\n"
        "from django.conf import settings\n"
        "json.dump({'INSTALLED_APPS': settings.INSTALLED_APPS,"
        " 'MIDDLEWARE': settings.MIDDLEWARE}, sys.stdout)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=frameworks.ROOT,
        env=frameworks.server_env("http://127.0.0.1:9"),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, list[str]] = json.loads(done.stdout)
    return result


def test_the_startproject_variants_have_startprojects_apps_and_middleware() -> None:
    project = startproject_settings()
    assert set(project) == {"INSTALLED_APPS", "MIDDLEWARE"}
    assert configured("application_project_plain") == project
    for name in ("application_project_untracked", "application_project_outlit"):
        assert configured(name) == {
            "INSTALLED_APPS": [*project["INSTALLED_APPS"], "outlit_django"],
            "MIDDLEWARE": [*project["MIDDLEWARE"], OUTLIT_MIDDLEWARE],
        }


@pytest.mark.parametrize(
    ("name", "events"),
    [
        ("application_project_plain", 0),
        ("application_project_untracked", 0),
        ("application_project_outlit", REQUESTS),
    ],
)
def test_the_startproject_variants_run_its_middleware_and_track_as_named(
    sink: str, name: str, events: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers, stored = serve(sink, name, monkeypatch)
    for answer in headers:
        # SecurityMiddleware and XFrameOptionsMiddleware, two of startproject's seven.
        assert answer["x-content-type-options"] == "nosniff"
        assert answer["x-frame-options"] == "DENY"
    assert stored == events


@pytest.mark.parametrize(
    ("name", "events"),
    [
        ("application_plain", 0),
        ("application_middleware", 0),
        ("application_untracked", 0),
        ("application_outlit", REQUESTS),
    ],
)
def test_the_bare_variants_run_no_middleware_of_djangos_and_track_as_named(
    sink: str, name: str, events: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers, stored = serve(sink, name, monkeypatch)
    for answer in headers:
        assert "x-frame-options" not in answer and "x-content-type-options" not in answer
    assert stored == events
