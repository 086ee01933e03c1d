"""``python -m outlit``: the same command line as the ``outlit`` script."""

from __future__ import annotations

import sys

from outlit._cli import main

if __name__ == "__main__":
    sys.exit(main())
