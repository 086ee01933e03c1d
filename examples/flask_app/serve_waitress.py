"""Serve the example app with waitress, stopping cleanly on SIGTERM as on Ctrl-C.

OUTLIT_PUBLIC_KEY=pk_... python serve_waitress.py [--host 127.0.0.1] [--port 8080]

waitress ends its loop on Ctrl-C (KeyboardInterrupt) and the interpreter then exits normally,
which is when the Outlit client flushes what it still holds. It installs no handler for
SIGTERM, the signal Docker, systemd and Kubernetes send to stop a service: by default that
ends the process at once, and the queued events with it. The handler below makes SIGTERM
leave the loop the way Ctrl-C does.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from app import create_app
from waitress import serve


def stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # waitress catches SystemExit in its loop as it does KeyboardInterrupt: serve() returns.
    sys.exit(0)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the example app with waitress.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    app = create_app()
    print(f"Serving on http://{args.host}:{args.port} (Ctrl-C or SIGTERM to stop)", flush=True)
    serve(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
