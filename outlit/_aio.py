"""Waiting in async code without blocking its event loop, under asyncio (uvloop included) or
trio: what ``aflush()`` and ``ashutdown()`` stand on.

Two things are needed: a wake-up that another thread (outlit's worker) can fire and the loop
can await with a time limit, and running a blocking call in a thread. Neither library is
imported here: asyncio only when a wait happens (``import outlit`` stays cheap for sync
apps), trio only if the app itself is running it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

NO_LOOP = (
    "outlit: aflush() and ashutdown() must be awaited inside an asyncio or trio event loop; "
    "in sync code, call flush() or shutdown()"
)


class Wakeup(Protocol):
    def fire(self) -> None:
        """Wake the waiting loop; safe from any thread. Raises if the loop has ended."""

    async def wait(self, limit: float) -> bool:
        """Wait at most ``limit`` seconds; True if fired meanwhile."""


def _running_trio() -> Any:
    """The trio module if this thread is inside ``trio.run``, else None."""
    trio = sys.modules.get("trio")
    if trio is None:
        return None
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        return None
    return trio


class _AsyncioWakeup:
    def __init__(self, asyncio: Any) -> None:
        self._asyncio = asyncio
        self._loop = asyncio.get_running_loop()
        self._woken = self._loop.create_future()

    def fire(self) -> None:
        self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        if not self._woken.done():
            self._woken.set_result(None)

    async def wait(self, limit: float) -> bool:
        try:
            await self._asyncio.wait_for(self._woken, limit)
        except self._asyncio.TimeoutError:
            return False
        return True


class _TrioWakeup:
    def __init__(self, trio: Any) -> None:
        self._trio = trio
        self._token = trio.lowlevel.current_trio_token()
        self._event = trio.Event()

    def fire(self) -> None:
        self._token.run_sync_soon(self._event.set)

    async def wait(self, limit: float) -> bool:
        with self._trio.move_on_after(limit):
            await self._event.wait()
        return bool(self._event.is_set())


def wakeup() -> Wakeup:
    """A wake-up for the running loop. Raises RuntimeError (saying what to do) outside one."""
    import asyncio

    try:
        return _AsyncioWakeup(asyncio)
    except RuntimeError:
        trio = _running_trio()
        if trio is None:
            raise RuntimeError(NO_LOOP) from None
        return _TrioWakeup(trio)


async def to_thread(function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` in a worker thread, awaited. A cancelled wait returns at once, as
    asyncio's does, while the call (always bounded by its own timeout) finishes in its
    thread."""
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        trio = _running_trio()
        if trio is None:
            raise RuntimeError(NO_LOOP) from None
        import inspect

        run_sync = trio.to_thread.run_sync
        if "abandon_on_cancel" in inspect.signature(run_sync).parameters:  # trio 0.23 on
            result: T = await run_sync(function, *args, abandon_on_cancel=True)
        else:
            result = await run_sync(function, *args, cancellable=True)
        return result
    return await asyncio.to_thread(function, *args)
