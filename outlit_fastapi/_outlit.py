"""The FastAPI integration object: one Outlit client, the ``Depends(outlit)`` dependency that
hands each request its bound tracker, and the lifespan that flushes on shutdown."""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, cast

from starlette.background import BackgroundTasks
from starlette.requests import HTTPConnection, Request

import outlit
from outlit import (
    DEFAULT_FLUSH_INTERVAL,
    DEFAULT_MAX_BATCH_SIZE,
    DEFAULT_MAX_QUEUE_SIZE,
    DEFAULT_MAX_REQUESTS_PER_SECOND,
    DEFAULT_SHUTDOWN_TIMEOUT,
    DEFAULT_TIMEOUT,
    BoundTracker,
    OptionError,
)
from outlit._tracker import failed_tracker, is_async_callable, lookup_tracker, user_identity

if TYPE_CHECKING:
    from fastapi.params import Depends
    from typing_extensions import Unpack

    from outlit import (
        ClientStats,
        CustomerAPI,
        FlushResult,
        Options,
        RetryPolicy,
        ServerIdentifyOptions,
        ServerTrackOptions,
        Transport,
        UserAPI,
    )
    from outlit._tracker import IdentitySource
from outlit._log import get_logger

logger = get_logger("outlit")

#: How long the serverless flush after each response may wait (seconds).
DEFAULT_FLUSH_AFTER_RESPONSE_TIMEOUT = 2.0

Identity = Mapping[str, Any]
#: ``identify(request) -> {"user_id": ..., "email": ...}``, sync or async. Returning None or {}
#: means "no identity for this request".
IdentifyFunction = (
    Callable[[Request], Identity | None] | Callable[[Request], Awaitable[Identity | None]]
)


def request_identity(connection: HTTPConnection) -> dict[str, Any]:
    """The identity of the user that Starlette's ``AuthenticationMiddleware`` authenticated.

    ``user_id`` comes from the user's ``pk``, ``id`` or ``get_id()``, else from Starlette's
    ``BaseUser.identity``, else ``username``; ``email`` is added when the user has one. Anonymous requests, and
    apps without authentication middleware, give ``{}``.
    """
    return _scope_identity(connection.scope)


def _scope_identity(scope: Mapping[str, Any]) -> dict[str, Any]:
    # Read from the scope: `request.user` asserts when AuthenticationMiddleware is not installed.
    user = scope.get("user")
    if user is None:
        return {}
    return user_identity(user)


def _checked_identity(found: Any) -> Identity | None:
    # A plain dict, the usual answer, skips the slower ABC check.
    if found is None or type(found) is dict or isinstance(found, Mapping):
        return found
    raise TypeError(
        "identify must return a dict of identity fields (user_id, email, ...) or None, "
        f"got {type(found).__name__}"
    )


def _identify_lazily(identify: Callable[[Any], Any], connection: HTTPConnection) -> Identity | None:
    # Called by BoundTracker, which logs what this raises and goes on without an identity.
    found = identify(connection)
    if type(found) is dict:  # what _checked_identity allows first, without its call
        return found
    return _checked_identity(found)


def _is_depends(value: Any) -> bool:
    try:
        from fastapi.params import Depends
    except ImportError:  # plain Starlette: nothing can be a Depends
        return False
    return isinstance(value, Depends)


#: The client options' defaults, to tell which ones a caller gave.
_DEFAULTS: dict[str, Any] = {
    "public_key": None,
    "api_host": None,
    "flush_interval": DEFAULT_FLUSH_INTERVAL,
    "max_batch_size": DEFAULT_MAX_BATCH_SIZE,
    "timeout": DEFAULT_TIMEOUT,
    "max_queue_size": DEFAULT_MAX_QUEUE_SIZE,
    "enabled": True,
    "shutdown_timeout": DEFAULT_SHUTDOWN_TIMEOUT,
    "max_requests_per_second": DEFAULT_MAX_REQUESTS_PER_SECOND,
    "retry": None,
    "transport": None,
}


class Outlit:
    """Outlit for a FastAPI or Starlette app: the client, the dependency and the lifespan.

    ``Outlit(...)`` takes every option of :class:`outlit.Outlit` (the public key and API host
    fall back to ``OUTLIT_PUBLIC_KEY`` / ``OUTLIT_API_HOST``), plus:

    ``identify``
        Where a request's default identity comes from, for tracking calls that name none.
        Default: the authenticated ``request.user`` (see :func:`request_identity`). A function
        ``identify(request) -> dict | None``, sync (called lazily, at most once per request,
        only when a call needs it) or async (awaited when the request's tracker is made).
        ``identify=Depends(fn)`` lets FastAPI resolve ``fn`` with its own dependencies.
    ``flush_after_response``
        For serverless hosts (Mangum on AWS Lambda and the like) that freeze the process once
        a response is returned: after each response is sent, wait (at most
        ``flush_after_response_timeout`` seconds, without blocking the event loop) until the
        queued events are delivered.
    ``client``
        An existing :class:`outlit.Outlit` to use instead of making one. The lifespan then
        flushes it on shutdown but leaves shutting it down to its owner.

    The instance is the dependency (``tracker=Depends(outlit)``) and ``outlit.lifespan`` is
    the app's lifespan. It also has the client's own methods (``outlit.track(...)``), for code
    that runs outside a request.
    """

    def __init__(
        self,
        public_key: str | None = None,
        *,
        api_host: str | None = None,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        timeout: float = DEFAULT_TIMEOUT,
        max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE,
        enabled: bool = True,
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
        max_requests_per_second: float = DEFAULT_MAX_REQUESTS_PER_SECOND,
        retry: RetryPolicy | None = None,
        transport: Transport | None = None,
        identify: IdentifyFunction | Depends | None = None,
        flush_after_response: bool = False,
        flush_after_response_timeout: float = DEFAULT_FLUSH_AFTER_RESPONSE_TIMEOUT,
        client: outlit.Outlit | None = None,
    ) -> None:
        if not isinstance(flush_after_response, bool):
            raise OptionError(
                f"flush_after_response must be True or False, got {flush_after_response!r}"
            )
        if (
            isinstance(flush_after_response_timeout, bool)
            or not isinstance(flush_after_response_timeout, (int, float))
            or not 0 < flush_after_response_timeout < float("inf")
        ):
            raise OptionError(
                "flush_after_response_timeout must be a finite number of seconds > 0, "
                f"got {flush_after_response_timeout!r}"
            )
        if identify is not None and not callable(identify) and not _is_depends(identify):
            raise OptionError(
                "identify must be a function of the request returning a dict of identity "
                f"fields, or Depends(function); got {identify!r}"
            )
        options: dict[str, Any] = {
            "public_key": public_key,
            "api_host": api_host,
            "flush_interval": flush_interval,
            "max_batch_size": max_batch_size,
            "timeout": timeout,
            "max_queue_size": max_queue_size,
            "enabled": enabled,
            "shutdown_timeout": shutdown_timeout,
            "max_requests_per_second": max_requests_per_second,
            "retry": retry,
            "transport": transport,
        }
        if client is not None:
            if not isinstance(client, outlit.Outlit):
                raise OptionError(f"client must be an outlit.Outlit, got {client!r}")
            given = sorted(name for name, value in options.items() if value != _DEFAULTS[name])
            if given:
                raise OptionError(
                    f"{', '.join(given)}: set these on the client you pass as client=, not here"
                )
            self._owns_client = False
        else:
            client = outlit.Outlit(**options)
            self._owns_client = True
        self._client = client
        self.flush_after_response = flush_after_response
        self.flush_after_response_timeout = float(flush_after_response_timeout)
        self._identify: Any = identify
        self._identify_is_async = identify is not None and is_async_callable(identify)
        self._identify_is_depends = identify is not None and _is_depends(identify)
        # A sync function of the request: called lazily by the tracker.
        self._identify_is_plain = identify is not None and not (
            self._identify_is_async or self._identify_is_depends
        )
        # With a plain identify, what a request's tracker calls with the connection when a call
        # first needs the identity: made once here, not per request.
        self._identify_connection = functools.partial(
            _identify_lazily, cast("Callable[[Any], Any]", identify)
        )
        self._lifespans = 0
        self._lifespans_run = 0  # lifespans of ours started so far
        self._request_check_due = True  # see _check_on_request
        self._warned_no_middleware = False  # see _flush_after_this_response
        self._shut_down_by_app = False  # see _after_app_shutdown
        # FastAPI reads a dependency's parameters from its signature. The instance's own
        # __signature__ asks only for what this configuration needs (the request, plus the
        # background tasks or the identify dependency when used), with real classes rather
        # than strings so that every FastAPI version resolves them.
        self.__signature__ = self._dependency_signature()

    # -- the dependency ------------------------------------------------------------------

    def _dependency_signature(self) -> inspect.Signature:
        keyword = inspect.Parameter.KEYWORD_ONLY
        parameters = [inspect.Parameter("connection", keyword, annotation=HTTPConnection)]
        if self._identify_is_depends:
            parameters.append(
                inspect.Parameter("identity", keyword, default=self._identify, annotation=Any)
            )
        if self.flush_after_response:
            parameters.append(
                inspect.Parameter("background_tasks", keyword, annotation=BackgroundTasks)
            )
        return inspect.Signature(parameters, return_annotation=BoundTracker)

    async def __call__(
        self,
        *,
        connection: HTTPConnection,
        identity: Identity | None = None,
        background_tasks: BackgroundTasks | None = None,
    ) -> BoundTracker:
        """The request's tracker: ``tracker=Depends(outlit)``."""
        # Async although it awaits nothing (mostly): FastAPI would run a sync dependency in its
        # thread pool, a thread hop on every request.
        if self._request_check_due:
            self._check_on_request()
        identify = self._identify
        # The common cases are inlined (this runs on every request), and build what
        # client.bind() returns directly: bind() imports BoundTracker on each call.
        if identify is None:
            tracker = lookup_tracker(self._client, _scope_identity, connection.scope)
        elif self._identify_is_plain:
            # Sync: the tracker calls it only if a call needs it, and logs its errors.
            tracker = lookup_tracker(self._client, self._identify_connection, connection)
        elif self._identify_is_depends:
            try:
                tracker = self._client.bind(_checked_identity(identity))
            except TypeError:
                # As for an identity function that fails: the request carries on, and calls
                # that name no identity are dropped and counted rather than raising in the route.
                logger.exception(
                    "outlit: identify gave no usable identity; calls that name no identity of "
                    "their own are not sent (counted as dropped, reason identity_failed)"
                )
                tracker = failed_tracker(self._client)
        else:
            tracker = await self.tracker_for(connection)
        if background_tasks is not None:
            self._flush_after_this_response(connection.scope, background_tasks)
        return tracker

    def _flush_after_this_response(self, scope: Any, background_tasks: BackgroundTasks) -> None:
        if scope.get("type") == "websocket":
            # No response, and FastAPI runs no background tasks for a websocket (nor does
            # OutlitMiddleware wait for one): the worker sends these events as usual.
            return
        state = scope.get("state")
        middleware_tracker = state.get("outlit") if isinstance(state, dict) else None
        if (
            isinstance(middleware_tracker, BoundTracker)
            and middleware_tracker._client is self._client
        ):
            return  # OutlitMiddleware waits once the app is done: a second wait would add up
        if not self._warned_no_middleware:
            self._warned_no_middleware = True
            logger.warning(
                "outlit: flush_after_response without OutlitMiddleware: Depends(outlit) can only "
                "wait in a background task, which misses events tracked in the route's own "
                "background tasks, in the teardown of yield dependencies and on requests that "
                "end in an exception. Add app.add_middleware(OutlitMiddleware, outlit=outlit) "
                "(said once)"
            )
        # Background tasks run after the response body has been sent.
        background_tasks.add_task(self.flush_queued)

    async def tracker_for(self, connection: HTTPConnection) -> BoundTracker:
        """A tracker bound to ``connection``'s identity (what the dependency and middleware use)."""
        identify = self._identify
        if identify is None:
            return self._client.bind(functools.partial(_scope_identity, connection.scope))
        if self._identify_is_depends:
            raise TypeError(
                "identify=Depends(...) is resolved by FastAPI's dependency injection, which only "
                "Depends(outlit) has: use Depends(outlit), or pass identify a plain function "
                "of the request"
            )
        if self._identify_is_async:
            try:
                found = _checked_identity(await identify(connection))
            except Exception:
                # App code: a failure must not break the request; calls that name an
                # identity of their own still work, the others are dropped and counted.
                logger.exception(
                    "outlit: the identity function raised; calls that name no identity of "
                    "their own are not sent (counted as dropped, reason identity_failed)"
                )
                return failed_tracker(self._client)
            return self._client.bind(found)
        # Sync: BoundTracker calls it only if a call needs it, and logs its errors.
        return BoundTracker(self._client, functools.partial(_identify_lazily, identify, connection))

    async def flush_queued(self) -> None:
        """Wait, at most ``flush_after_response_timeout``, until queued events are delivered.

        The wait takes no thread, and the event loop keeps serving; nothing is raised.
        """
        client = self._client
        if client.queue_size == 0:  # skip the thread hop when there is nothing to send
            return
        try:
            await client.aflush(self.flush_after_response_timeout)
        except Exception:
            logger.exception("outlit: the flush after the response failed")

    # -- the lifespan --------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any) -> AsyncIterator[None]:
        """The app's lifespan: ``FastAPI(lifespan=outlit.lifespan)``.

        On shutdown it delivers what is queued and stops the client (``ashutdown()``, in a
        thread: the event loop keeps running), waiting at most ``shutdown_timeout``. Inside
        your own lifespan: ``async with outlit.lifespan(app): ...``. A later startup (a second
        ``with TestClient(app)``) starts a fresh client with the same options.
        """
        self._start()
        try:
            yield
        finally:
            await self._stop()

    def wrap_lifespan(
        self, app_lifespan: Callable[[Any], AbstractAsyncContextManager[Any]]
    ) -> Callable[[Any], AbstractAsyncContextManager[Any]]:
        """``FastAPI(lifespan=outlit.wrap_lifespan(lifespan))``: your lifespan runs inside ours.

        Whatever state your lifespan yields is passed on to the app, and events your code
        tracks during its own shutdown are still delivered.
        """

        @contextlib.asynccontextmanager
        async def lifespan(app: Any) -> AsyncIterator[Any]:
            async with self.lifespan(app), app_lifespan(app) as state:
                yield state

        return lifespan

    def _check_on_request(self) -> None:
        """The slow path of a request, taken at the first one and after a lifespan ended.

        After a lifespan of ours shut its client down (a test's ``with TestClient(app)``), a
        request served without one (the next test's) gets a fresh client instead of
        ``ClientClosedError``. And once, when no lifespan of ours ever ran: a warning. Servers
        run the lifespan startup before serving, so it never will; then only the
        interpreter-exit handler flushes the queue, and uvicorn ends the process with the
        signal, which skips it."""
        self._request_check_due = False
        self._live_client()
        if (
            self._lifespans_run
            or self.flush_after_response  # serverless, often without a lifespan: flushes anyway
            or not self._owns_client  # Outlit(client=...): its owner shuts it down
            or not self._client.options.enabled  # nothing is ever queued
            or self._shut_down_by_app  # it flushes on its own (see _after_app_shutdown)
        ):
            return
        logger.warning(
            "outlit: requests are served without outlit.lifespan, so only the exit handler "
            "flushes Outlit's queue, and it never runs when uvicorn stops (it ends the process "
            "with the signal): events still queued then would be lost. Use "
            "FastAPI(lifespan=outlit.lifespan), or outlit.wrap_lifespan(your_lifespan); in "
            "tests, `with TestClient(app):` runs it."
        )

    def _live_client(self) -> outlit.Outlit:
        """The client to track with: a fresh one (same options, no thread until used) when a
        lifespan of ours shut the one it had down and no lifespan is running now."""
        client = self._client
        if client.closed and self._owns_client and not self._lifespans:
            client = self._client = outlit.Outlit(**client.options.as_dict())
        return client

    def _start(self) -> None:
        # A client the previous lifespan shut down (tests run one lifespan per TestClient) is
        # replaced by a fresh one with the same options, as outside a lifespan.
        self._live_client()
        self._lifespans += 1
        self._lifespans_run += 1

    async def _stop(self) -> None:
        self._lifespans -= 1
        if self._lifespans > 0:
            return  # another app sharing this client is still running
        try:
            if self._owns_client:
                await self._client.ashutdown()
            else:
                await self._client.aflush(self._client.options.shutdown_timeout)
        except Exception:
            logger.exception("outlit: error while flushing at shutdown")
        finally:
            # Also when the wait is cancelled (a test's lifespan manager timing out): the
            # shutdown goes on in its thread, and a request after this one gets a live client.
            self._request_check_due = True

    # -- the client's own methods, for code outside a request ------------------------------

    @property
    def client(self) -> outlit.Outlit:
        """The current :class:`outlit.Outlit` client (a new one after a lifespan restart)."""
        return self._client

    @property
    def options(self) -> Options:
        return self._client.options

    # The tracking methods go to a live client: see _live_client.

    def track(self, **kwargs: Unpack[ServerTrackOptions]) -> None:
        """:meth:`outlit.Outlit.track`: the caller names the identity."""
        self._live_client().track(**kwargs)

    def identify(self, **kwargs: Unpack[ServerIdentifyOptions]) -> None:
        """:meth:`outlit.Outlit.identify` (the event, not the ``identify=`` option)."""
        self._live_client().identify(**kwargs)

    @property
    def user(self) -> UserAPI:
        return self._live_client().user

    @property
    def customer(self) -> CustomerAPI:
        return self._live_client().customer

    def bind(self, identity: IdentitySource = None) -> BoundTracker:
        return self._live_client().bind(identity)

    def flush(self, timeout: float | None = None) -> FlushResult:
        return self._client.flush(timeout)

    async def aflush(self, timeout: float | None = None) -> FlushResult:
        return await self._client.aflush(timeout)

    def shutdown(self, timeout: float | None = None) -> FlushResult:
        try:
            return self._client.shutdown(timeout)
        finally:
            self._after_app_shutdown()

    async def ashutdown(self, timeout: float | None = None) -> FlushResult:
        try:
            return await self._client.ashutdown(timeout)
        finally:
            self._after_app_shutdown()

    def _after_app_shutdown(self) -> None:
        # Shut down by the app itself (a test fixture, an on_event("shutdown") handler): as
        # after a lifespan of ours, a request served after this gets a live client rather than
        # ClientClosedError; and the app flushes on its own, so no warning about the lifespan.
        self._shut_down_by_app = True
        self._request_check_due = True

    @property
    def queue_size(self) -> int:
        return self._client.queue_size

    @property
    def stats(self) -> ClientStats:
        return self._client.stats

    def __repr__(self) -> str:
        return f"<outlit_fastapi.Outlit client={self._client!r}>"
