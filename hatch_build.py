"""Builds ``outlit/_speedups.c``, outlit's optional compiled fast paths, into the wheel.

Compiled with the C compiler the running Python was built with (``sysconfig``), when there is
one; otherwise, or when compiling fails, the wheel is pure Python and outlit runs the same
code paths in Python (see ``outlit/_compiled.py``). ``OUTLIT_NO_COMPILE=1`` skips compiling.
An editable install (``pip install -e .``) builds the module next to its source.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCE = Path("outlit") / "_speedups.c"


def source_digest(source: Path) -> str:
    """What the compiled module records of its source, so that a stale build can be told."""
    return hashlib.sha256(source.read_bytes()).hexdigest()[:16]


def _flags(name: str) -> list[str]:
    return shlex.split(sysconfig.get_config_var(name) or "")


def compile_speedups(root: Path, target: Path) -> str | None:
    """Compile the extension to ``target``; return why not, or None when it was built.

    With the flags the running Python was built with (sysconfig: CFLAGS carries -DNDEBUG,
    -fwrapv and, on macOS, the architectures and deployment target), and, as setuptools does,
    CC, LDSHARED, CFLAGS, CPPFLAGS and LDFLAGS from the environment on top."""
    source = root / SOURCE
    cc = sysconfig.get_config_var("CC")
    ldshared = sysconfig.get_config_var("LDSHARED")
    include = sysconfig.get_config_var("INCLUDEPY")
    if not cc or not ldshared or not include:
        return "this Python records no C compiler (sysconfig CC/LDSHARED)"
    if os.environ.get("CC"):
        ldshared = " ".join([os.environ["CC"], *shlex.split(ldshared)[1:]])
        cc = os.environ["CC"]
    ldshared = os.environ.get("LDSHARED") or ldshared
    env_flags = [
        *shlex.split(os.environ.get("CPPFLAGS", "")),
        *shlex.split(os.environ.get("CFLAGS", "")),
    ]
    with tempfile.TemporaryDirectory() as scratch:
        obj = Path(scratch) / "_speedups.o"
        steps = [
            [
                *shlex.split(cc),
                *_flags("CFLAGS"),
                *_flags("CCSHARED"),
                *env_flags,
                f'-DOUTLIT_SOURCE_DIGEST="{source_digest(source)}"',
                f"-I{include}",
                "-c",
                str(source),
                "-o",
                str(obj),
            ],
            [
                *shlex.split(ldshared),
                *shlex.split(os.environ.get("LDFLAGS", "")),
                str(obj),
                "-o",
                str(target),
            ],
        ]
        for step in steps:
            try:
                done = subprocess.run(step, capture_output=True, text=True, check=False)
            except OSError as exc:
                return f"{step[0]} could not run: {exc}"
            if done.returncode != 0:
                return f"{' '.join(step[:1])} failed:\n{done.stderr.strip()}"
    return None


class SpeedupsBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        root = Path(self.root)
        name = "_speedups" + (sysconfig.get_config_var("EXT_SUFFIX") or ".so")
        # An editable install imports the module next to its source: one left from an
        # earlier install would stay in use, older than the source, unless removed here.
        in_tree = root / "outlit" / name
        if os.environ.get("OUTLIT_NO_COMPILE", "").strip() not in ("", "0"):
            if version == "editable":
                in_tree.unlink(missing_ok=True)
            self.app.display_info("outlit: OUTLIT_NO_COMPILE is set: a pure-Python wheel")
            return
        self._scratch = tempfile.mkdtemp(prefix="outlit-speedups-")
        target = Path(self._scratch) / name
        why_not = compile_speedups(root, target)
        if why_not is not None:
            if version == "editable":
                in_tree.unlink(missing_ok=True)
            message = f"outlit: the compiled fast paths are not built ({why_not}); pure Python"
            self.app.display_warning(message)
            print(message, file=sys.stderr)
            return
        if version == "editable":
            # Replaced in one step: tox's environments of one Python version install in
            # parallel from the same checkout.
            moved = in_tree.with_name(f"{name}.{os.getpid()}.tmp")
            shutil.copy2(target, moved)
            os.replace(moved, in_tree)
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        build_data["force_include"][str(target)] = f"outlit/{name}"

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        scratch = getattr(self, "_scratch", None)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
