"""Where events wait: the bounded in-memory queue between callers and the background worker.

Callers append built event dicts, or for ``track()`` the flat tuple that
:func:`~outlit._events.custom_event` turns into one (``deque.append`` is atomic, so no lock on
the request path). The worker takes batches from the front with
:meth:`EventQueue.take_batch`, which runs no code of the app's (the worker encodes after: in
pure Python usually the whole batch in one call), or with its compiled twin, which writes the
JSON of track()'s usual tuples itself and leaves the rest to the worker. A batch that
failed for a transient reason goes back to the front as per-event bytes, so a retry sends the
same bytes, ``uuid`` included. Encoded events (a batch put back, or the event that did not fit
the last body) only ever sit at the front, ahead of every unencoded event. ``flush()`` places a
:class:`FlushMarker` behind the events it waits for.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

# The body is {"source":"server","events":[e1,e2,...]}: this many bytes beside the events.
BODY_PREFIX = b'{"source":"server","events":['
BODY_SUFFIX = b"]}"
BODY_OVERHEAD = len(BODY_PREFIX) + len(BODY_SUFFIX)


class FlushMarker:
    """Set once every event queued before it has been delivered or given up on.

    ``on_done``, when given, is called once by the thread that releases the marker (the
    worker's, usually): ``aflush()`` uses it to wake its event loop without a thread of its own.
    """

    __slots__ = ("abandoned", "cancelled", "done", "on_done")

    def __init__(self, on_done: Callable[[], None] | None = None) -> None:
        self.done = threading.Event()
        self.on_done = on_done
        # Its flush stopped waiting (see EventQueue.cancel_marker): not put back if riding.
        self.cancelled = False
        # Released by a shutdown that gave up on what was ahead (see release_all_markers).
        self.abandoned = False

    def release(self) -> None:
        self.done.set()
        if self.on_done is not None:
            # The waiting loop may be closed: then nobody is waiting any more.
            with contextlib.suppress(Exception):
                self.on_done()


class EventQueue(deque):  # type: ignore[type-arg]
    """A deque of event dicts, track() tuples, encoded events (bytes) and flush markers.

    It is a plain deque subclass so that the request path pays only for ``append``; the
    cap (``max_queue_size``) is checked by the client before appending.
    """

    def __init__(self) -> None:
        super().__init__()
        self.markers = 0
        self._marker_lock = threading.RLock()  # reentrant: see Worker.counter_lock

    # events_waiting() reads len(self) and self.markers without a lock: every change below
    # makes the marker count right in the order that can only overcount the events meanwhile
    # (a flush then waits a moment longer; an undercount could let it return before its events
    # are sent).

    def add_marker(self, marker: FlushMarker) -> None:
        with self._marker_lock:
            self.append(marker)
            self.markers += 1

    def cancel_marker(self, marker: FlushMarker) -> None:
        """Take back the marker of a flush that stopped waiting, unless already released: a
        marker left behind would stay until the queue drains, and a flush per request during
        an outage would pile them up."""
        with self._marker_lock:
            marker.cancelled = True  # if it rides with a batch, it is not put back
            self.markers -= 1
            try:
                self.remove(marker)  # compares by identity: no other thread runs meanwhile
            except ValueError:
                self.markers += 1  # released by the worker in the meantime, or riding

    def events_waiting(self) -> int:
        return max(len(self) - self.markers, 0)

    def release_front_markers(self) -> None:
        """Mark done every flush marker at the front (nothing unsettled is ahead of them)."""
        while self:
            try:
                item = self[0]
            except IndexError:
                return
            if type(item) is not FlushMarker:
                return
            with self._marker_lock:
                # A flush that timed out may have taken its marker back since it was read.
                if not self or self[0] is not item:
                    continue
                self.markers -= 1
                self.popleft()
            item.release()

    def take_markers(self, max_events: int) -> list[tuple[int, FlushMarker]]:
        """Take out the flush markers among the next ``max_events`` events, each with the
        number of events ahead of it, so that the next batch is not cut at each marker: a
        burst of requests that each track and then flush leaves event, marker, event,
        marker, and without this each event would go in a request of its own. The worker
        releases each marker once the events ahead of it in the batch are settled, and puts
        back (``put_back_markers``) those whose events go back to the queue. Called with the
        worker's move lock held (no batch moves meanwhile); callers keep appending at the
        other end.

        Only if the marker lock is free at once: its holder may be a flush (on a thread whose
        signal handler interrupted an add_marker, say) waiting for the move lock held here.
        The batch is then cut at the marker, as without this."""
        if not self._marker_lock.acquire(blocking=False):
            return []
        try:
            front: list[Any] = []
            riders: list[tuple[int, FlushMarker]] = []
            while len(front) < max_events:
                try:
                    item = self.popleft()
                except IndexError:
                    break
                if type(item) is FlushMarker:
                    riders.append((len(front), item))
                    self.markers -= 1
                else:
                    front.append(item)
            self.extendleft(reversed(front))
            return riders
        finally:
            self._marker_lock.release()

    def put_back_markers(self, riders: list[tuple[int, FlushMarker]]) -> None:
        """Put riding markers back, each behind the given number of events at the front (in
        increasing order), unless its flush stopped waiting meanwhile."""
        with self._marker_lock:
            placed = 0
            for ahead, marker in riders:
                if marker.cancelled:
                    continue
                self.insert(ahead + placed, marker)
                self.markers += 1
                placed += 1

    def release_all_markers(self, abandoned: bool = False) -> None:
        """At shutdown, once what was queued is dropped: every waiting flush is let go, told
        (``abandoned``) that it was let go rather than settled: the flush then counts what
        is still queued or in flight, and what the shutdown dropped, to say how it ended."""
        for item in [i for i in self if type(i) is FlushMarker]:
            item.abandoned = abandoned
            item.release()

    def discard_all(self, abandoned: bool = False) -> int:
        """Empty the queue, releasing every flush marker (``abandoned`` at shutdown: see
        release_all_markers); return how many events it held."""
        discarded = 0
        while True:
            with self._marker_lock:  # so that no marker is taken back or released meanwhile
                try:
                    if type(self[0]) is FlushMarker:
                        self.markers -= 1
                    item = self.popleft()
                except IndexError:
                    return discarded
            if type(item) is FlushMarker:
                item.abandoned = abandoned
                item.release()
            else:
                discarded += 1

    def take_batch(self, max_events: int, max_bytes: int) -> list[Any]:
        """Pop up to ``max_events`` items, stopping before a flush marker, and before an encoded
        event (bytes, put back for a retry) that would take the body over ``max_bytes``.

        Items that are not encoded yet (track() tuples, event dicts) are taken as they are and
        not counted against ``max_bytes``: the worker encodes them after this, outside its move
        lock, since encoding may run the app's code. Nothing here does. The compiled twin,
        ``outlit._speedups.take_batch``, also writes the JSON of the usual track() tuple.
        """
        batch: list[Any] = []
        size = BODY_OVERHEAD
        while self and len(batch) < max_events:
            try:
                if type(self[0]) is FlushMarker:
                    break
                item = self.popleft()
            except IndexError:  # emptied meanwhile by discard_all() on another thread
                break
            if type(item) is FlushMarker:  # after discard_all() took the item read above
                self.appendleft(item)
                break
            if type(item) is bytes:
                added = len(item) + (1 if batch else 0)
                if size + added > max_bytes and batch:
                    self.appendleft(item)
                    break
                size += added
            batch.append(item)
        return batch

    def requeue(self, batch: Iterable[bytes | dict[str, Any]]) -> None:
        """Put events (encoded, or dicts just taken) back at the front, in their original order."""
        self.extendleft(reversed(list(batch)))


def build_body(batch: list[bytes]) -> bytes:
    return BODY_PREFIX + b",".join(batch) + BODY_SUFFIX
