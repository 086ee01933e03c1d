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


def compile_speedups(root: Path, target: Path) -> str | None:
    """Compile the extension to ``target``; return why not, or None when it was built."""
    source = root / SOURCE
    cc = sysconfig.get_config_var("CC")
    ldshared = sysconfig.get_config_var("LDSHARED")
    include = sysconfig.get_config_var("INCLUDEPY")
    if not cc or not ldshared or not include:
        return "this Python records no C compiler (sysconfig CC/LDSHARED)"
    # As setuptools does: CC and LDSHARED in the environment choose another compiler.
    if os.environ.get("CC"):
        ldshared = " ".join([os.environ["CC"], *shlex.split(ldshared)[1:]])
        cc = os.environ["CC"]
    ldshared = os.environ.get("LDSHARED") or ldshared
    ccshared = sysconfig.get_config_var("CCSHARED") or ""
    with tempfile.TemporaryDirectory() as scratch:
        obj = Path(scratch) / "_speedups.o"
        steps = [
            [
                *shlex.split(cc),
                *shlex.split(ccshared),
                "-O2",
                "-Wall",
                f'-DOUTLIT_SOURCE_DIGEST="{source_digest(source)}"',
                f"-I{include}",
                "-c",
                str(source),
                "-o",
                str(obj),
            ],
            [*shlex.split(ldshared), str(obj), "-o", str(target)],
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
        if os.environ.get("OUTLIT_NO_COMPILE", "").strip() not in ("", "0"):
            self.app.display_info("outlit: OUTLIT_NO_COMPILE is set: a pure-Python wheel")
            return
        root = Path(self.root)
        name = "_speedups" + (sysconfig.get_config_var("EXT_SUFFIX") or ".so")
        if version == "editable":
            # Next to the source, replaced in one step: tox's environments of one Python
            # version install in parallel from the same checkout.
            final = root / "outlit" / name
            target = final.with_name(f"{name}.{os.getpid()}.tmp")
        else:
            target = Path(self.directory) / "outlit-speedups" / name
            target.parent.mkdir(parents=True, exist_ok=True)
        why_not = compile_speedups(root, target)
        if version == "editable" and why_not is None:
            os.replace(target, final)
        elif version == "editable":
            target.unlink(missing_ok=True)
        if why_not is not None:
            message = f"outlit: the compiled fast paths are not built ({why_not}); pure Python"
            self.app.display_warning(message)
            print(message, file=sys.stderr)
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        if version != "editable":
            build_data["force_include"][str(target)] = f"outlit/{name}"
