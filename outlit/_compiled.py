"""Whether outlit's compiled fast paths (``outlit/_speedups.c``) are in use.

The extension is optional: ``hatch_build.py`` builds it when the install finds a C compiler,
and without it every function runs in pure Python. It stands in for a few functions (and
``BoundTracker.track``), each only for their usual call, and hands every other call to the
pure-Python code it replaces: see the top of ``_speedups.c``. ``OUTLIT_PURE_PYTHON=1`` in the
environment turns it off (the tests run the core in both modes).
"""

from __future__ import annotations

import os
from types import ModuleType

ENV_PURE_PYTHON = "OUTLIT_PURE_PYTHON"


def _load() -> ModuleType | None:
    if os.environ.get(ENV_PURE_PYTHON, "").strip() not in ("", "0"):
        return None
    try:
        from . import _speedups
    except ImportError:  # not built (no C compiler at install), or built for another Python
        return None
    if not _speedups.in_main_interpreter():
        return None  # its state is the main interpreter's: see in_main_interpreter()
    return _speedups


speedups = _load()


def describe() -> str:
    """For ``outlit doctor``: which implementation the hot paths use."""
    if speedups is not None:
        return "compiled"
    if os.environ.get(ENV_PURE_PYTHON, "").strip() not in ("", "0"):
        return f"pure Python ({ENV_PURE_PYTHON} is set)"
    try:
        from . import _speedups  # noqa: F401 - built, then: _load() refused it
    except ImportError:
        built = sorted(
            name
            for name in os.listdir(os.path.dirname(os.path.abspath(__file__)))
            if name.startswith("_speedups.") and name.endswith((".so", ".pyd"))
        )
        if built:
            # Installed by another Python (a layer or target directory built elsewhere).
            return (
                f"pure Python (compiled for another Python: {', '.join(built)}; install with "
                "this one to compile for it)"
            )
        return "pure Python (not compiled at install: no C compiler, or OUTLIT_NO_COMPILE)"
    return "pure Python (in a sub-interpreter)"
