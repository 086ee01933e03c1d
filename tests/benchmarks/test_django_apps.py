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
from collections.abc import Iterator

import django
import pytest

# This folder is on sys.path (pytest's default import mode): test_sink is a sibling module.
from test_sink import frameworks, running_sink, stats

pytestmark = pytest.mark.slow

REQUESTS = 5
APP = "benchmarks.apps.django_hello:"
OUTLIT_MIDDLEWARE = "outlit_django.middleware.OutlitMiddleware"


@pytest.fixture(scope="module")
def sink() -> Iterator[str]:
    with running_sink() as url:
        yield url


def serve(sink: str, name: str) -> tuple[list[dict[str, str]], int]:
    """Start gunicorn on ``name``, send REQUESTS requests, stop it (SIGTERM: outlit flushes):
    (each response's headers, events the sink stored meanwhile)."""
    before = stats(sink)["events_stored"]
    port = frameworks.free_port()
    # Ready once a missing page answers 404: Django does not run the view, so this tracks
    # nothing (a check of "/" that timed out is still answered later, and would have tracked
    # an event this test does not expect).
    server = frameworks.start_server(
        "gunicorn", APP + name, port, frameworks.server_env(sink), ready=("/no-such-page", 404)
    )
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
        ("application_plain", 0),
        ("application_middleware", 0),
        ("application_untracked", 0),
        ("application_outlit", REQUESTS),
    ],
)
def test_each_variant_runs_its_projects_middleware_and_tracks_as_named(
    sink: str, name: str, events: int
) -> None:
    headers, stored = serve(sink, name)
    # SecurityMiddleware's and XFrameOptionsMiddleware's headers: two of startproject's seven
    # middleware, and none of Django's in the bare variants.
    project_headers = {"x-content-type-options": "nosniff", "x-frame-options": "DENY"}
    for answer in headers:
        found = {key: answer.get(key) for key in project_headers}
        if "_project_" in name:
            assert found == project_headers
        else:
            assert found == {key: None for key in project_headers}
    assert stored == events
