"""TRANSPORT values that import but are not usable: the server refuses them as it loads the
middleware, so ``manage.py check`` must report them too."""

from __future__ import annotations

NOT_A_TRANSPORT = 42


def raising_factory() -> object:
    raise RuntimeError("no transport for you")


def httpx_with_a_typo() -> object:
    from outlit import HttpxTransport

    return HttpxTransport(verfy=False)  # httpx.Client has no such option
