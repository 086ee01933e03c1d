"""benchmarks/footprint.py's loop, run without valgrind: each variant serves its requests, and
the tracked ones queue one event per request (or the counts would compare the wrong things)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import footprint  # noqa: E402

pytestmark = pytest.mark.slow

CASES = [
    pytest.param(
        target,
        env,
        variant.startswith("outlit") and "untracked" not in variant,
        id=f"{framework}-{variant}",
    )
    for framework, variants in footprint.VARIANTS.items()
    for variant, target, env in variants
]


@pytest.mark.parametrize(("target", "env", "tracks"), CASES)
def test_each_variant_serves_and_tracks_as_named(
    target: str, env: dict[str, str], tracks: bool
) -> None:
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "footprint.py"), "--child", target, "60"],
        capture_output=True,
        text=True,
        env={**os.environ, "OUTLIT_API_HOST": "http://127.0.0.1:9", **env},
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    requests, queued = _counts(done.stdout)
    assert requests == 60
    assert queued == (60 if tracks else 0)


def _counts(line: str) -> tuple[int, int]:
    words = line.split()
    return int(words[0]), int(words[2])
