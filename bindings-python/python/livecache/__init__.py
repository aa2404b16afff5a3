"""livecache: a native live query cache with streaming updates (SPEC §7 Python).

Threads: subscriber callbacks run with the GIL on the engine's delivery thread, or — when
``subscribe`` is called inside a running asyncio loop — on that loop: the core queues the events
(bounded by ``queueLimit``, E4/E5) and wakes the loop once per burst to drain them.
Hooks run on engine threads; a hook that returns a coroutine (``async def``) runs on the event loop
that was running when the ``Client`` was created, or, for a client created outside any loop, on a
private loop thread the client starts on first use and stops on ``close()``.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import inspect
import threading
import weakref
from typing import Any, AsyncIterator, Callable, Dict, Generator, List, Mapping, Optional, Sequence, Set, Tuple, Union

from . import _livecache
from ._draft import DraftDict, DraftList, run_on_messages
from ._livecache import (
    NO_ARG,
    CacheEntryRemoved,
    Closed,
    ConfigError,
    HostUpdate,
    InvalidArgument,
    InvalidInput,
    LivecacheError,
    MutationError,
    NotConnected,
    NotFound,
    NotLoaded,
    PatchError,
    UnknownEndpoint,
    WrongEndpointKind,
)

__all__ = [
    "NO_ARG",
    "CacheEntryRemoved",
    "Client",
    "Closed",
    "ConfigError",
    "DraftDict",
    "DraftList",
    "HostUpdate",
    "InvalidArgument",
    "InvalidInput",
    "Lifecycle",
    "LivecacheError",
    "MutationError",
    "NotConnected",
    "NotFound",
    "NotLoaded",
    "PatchError",
    "Pending",
    "QueryError",
    "Subscription",
    "UnknownEndpoint",
    "WrongEndpointKind",
]

Event = Dict[str, Any]


class QueryError(LivecacheError):
    """Raised by a ``query_fn`` to fail the fetch with this exact ``error`` value (L6), like
    returning ``{error}`` from an RTK Query ``queryFn``. Any other exception fails it with
    ``{"status": "CUSTOM_ERROR", "error": str(exc)}``."""

    def __init__(self, error: Any) -> None:
        super().__init__(error)
        self.error = error


class Pending:
    """A result the engine delivers later (``loaded()``, ``lifecycle.cache_data_loaded``).

    Awaitable any number of times from any event loop, and ``result(timeout)`` for threads. It is
    bound when created, and a rejection nobody looks at is never reported (L2).
    """

    __slots__ = ("_future",)

    def __init__(self) -> None:
        self._future: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def _settle(self, ok: bool, value: Any) -> None:
        if self._future.done():
            return
        if ok:
            self._future.set_result(value)
        else:
            self._future.set_exception(value)

    def done(self) -> bool:
        return self._future.done()

    def result(self, timeout: Optional[float] = None) -> Any:
        return self._future.result(timeout)

    def __await__(self) -> Generator[Any, None, Any]:
        return asyncio.wrap_future(self._future).__await__()


def _error_value(exc: BaseException) -> Any:
    if isinstance(exc, QueryError):
        return exc.error
    return {"status": "CUSTOM_ERROR", "error": f"{type(exc).__name__}: {exc}"}


def _run_private_loop(loop: asyncio.AbstractEventLoop) -> None:
    # The loop that runs awaitable hooks when the client has no loop of its own. Once stopped,
    # its pending hooks are cancelled and the loop is closed here, on its own thread: a loop
    # left open is closed by the garbage collector at interpreter exit, after its self-pipe
    # socket may already be gone, and that prints a traceback.
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        try:
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()


class _HookRunner:
    """Runs hook functions for the engine (called from engine threads, with the GIL)."""

    def __init__(self, loop: Optional[asyncio.AbstractEventLoop]) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._private: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None

    def _target_loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            return loop
        with self._lock:
            if self._private is None:
                private = asyncio.new_event_loop()
                thread = threading.Thread(target=_run_private_loop, args=(private,), name="livecache-hooks", daemon=True)
                thread.start()
                self._private, self._thread = private, thread
            return self._private

    def call(self, fn: Callable[..., Any], args: Tuple[Any, ...], completion: Any) -> None:
        try:
            result = fn(*args)
        except BaseException as exc:  # a hook failure is reported by the engine (SPEC §6)
            completion.reject(_error_value(exc))
            return
        if inspect.isawaitable(result):
            awaitable = result

            async def run() -> Any:
                return await awaitable

            try:
                future = asyncio.run_coroutine_threadsafe(run(), self._target_loop())
            except RuntimeError as exc:
                completion.reject(_error_value(exc))
                return
            future.add_done_callback(lambda f: self._finish(f, completion))
        elif isinstance(result, concurrent.futures.Future):
            result.add_done_callback(lambda f: self._finish(f, completion))
        else:
            completion.resolve(result)

    @staticmethod
    def _finish(future: "concurrent.futures.Future[Any]", completion: Any) -> None:
        if future.cancelled():
            completion.reject({"status": "CUSTOM_ERROR", "error": "cancelled"})
            return
        exc = future.exception()
        if exc is not None:
            completion.reject(_error_value(exc))
        else:
            completion.resolve(future.result())

    def call_lifecycle(self, fn: Callable[..., Any], arg: Any, native: _livecache.NativeLifecycle, completion: Any) -> None:
        self.call(fn, (arg, Lifecycle(native)), completion)

    def on_messages(self, fn: Callable[..., Any], data: Any, messages: List[Any], arg: Any) -> Any:
        return run_on_messages(fn, data, messages, arg)

    def close(self) -> None:
        with self._lock:
            private, thread = self._private, self._thread
            self._private = self._thread = None
        if private is not None and thread is not None:
            private.call_soon_threadsafe(private.stop)
            if thread is not threading.current_thread():
                thread.join(timeout=5)


class Lifecycle:
    """The second argument of ``on_cache_entry_added`` (SPEC §6), bound to one entry lifetime."""

    def __init__(self, native: _livecache.NativeLifecycle) -> None:
        self._native = native
        #: Resolves with ``{"data", "meta"}`` on the first data (L2); raises ``CacheEntryRemoved``
        #: if the entry goes first.
        self.cache_data_loaded = Pending()
        #: Resolves (with ``None``) when the entry is removed (L3).
        self.cache_entry_removed = Pending()
        native.when_loaded(self.cache_data_loaded._settle)
        native.when_removed(self.cache_entry_removed._settle)

    @property
    def key(self) -> str:
        return str(self._native.key)

    def update_cached_data(self, recipe: Callable[[Any], Any]) -> HostUpdate:
        """A host update of this entry (L9): ``recipe(draft)`` mutates the draft or returns new data."""
        return self._native.update_cached_data(recipe)

    def get_cache_entry(self) -> Dict[str, Any]:
        return self._native.get_cache_entry()


class _EventStream:
    """One ``events()`` reader. Its events wait in a queue of the core's, bounded like the
    subscription's own (E4, E5): a reader more than ``queueLimit`` events behind gets one
    ``snapshot`` of the current state instead of the steps it missed."""

    def __init__(self, sub: "Subscription") -> None:
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._waiter: Optional["asyncio.Future[None]"] = None
        self._reader: Any = sub._native.events(self._wake) if sub._active else None
        self._done = self._reader is None

    def _wake(self) -> None:
        """From the delivery thread: events wait, or the subscription ended."""
        loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._notify)
            except RuntimeError:
                pass  # the reader's loop is closed: nobody waits

    def _notify(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __aiter__(self) -> "_EventStream":
        return self

    async def __anext__(self) -> Event:
        if self._done:
            raise StopAsyncIteration
        loop = asyncio.get_running_loop()
        self._loop = loop
        while True:
            # The waiter exists before the queue is looked at, so a wake in between is not lost.
            self._waiter = loop.create_future()
            event: Optional[Event] = self._reader.next()
            if event is not None:
                return event
            if self._reader.done():
                self._done = True
                raise StopAsyncIteration
            await self._waiter

    async def aclose(self) -> None:
        self._done = True
        if self._reader is not None:
            self._reader.close()


class Subscription:
    """One subscriber of one cache key. Stays active until ``unsubscribe()`` or ``client.close()``
    (the client keeps it alive). Also a context manager that unsubscribes on exit."""

    def __init__(
        self, client: "Client", endpoint: str, arg: Any, on_event: Optional[Callable[[Event], Any]], options: Optional[Dict[str, Any]] = None
    ) -> None:
        self._client = client
        self._on_event = on_event
        self._active = True
        # Held while a callback runs on the subscribing loop, so `unsubscribe()` from another thread
        # returns only after it finished (SPEC §5); on the delivery thread the engine does this.
        self._running = threading.RLock()
        try:
            self._loop: Optional[asyncio.AbstractEventLoop] = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        # On a loop, the callback's events wait in a reader of the core's (E4, E5: a busy loop holds
        # at most `queueLimit` of them, not one scheduled call per event) and are converted there.
        self._reader: Any = None
        self._drain_due = False
        if on_event is not None and self._loop is not None:
            self._native, self._reader = client._native.subscribe_reader(endpoint, arg, options, _weakly(self._wake))
        else:
            # Without a callback the engine converts nothing for it: `events()` readers convert their own.
            self._native = client._native.subscribe(endpoint, arg, options, _weakly(self._deliver) if on_event is not None else None)

    # Engine side --------------------------------------------------------------------------------
    def _deliver(self, event: Event) -> None:
        # A callback outside any loop, on the delivery thread (see __init__).
        self._dispatch(event)

    def _wake(self) -> None:
        """From the delivery thread: the reader's queue filled from empty, or the subscription ended."""
        loop = self._loop
        if loop is None or self._drain_due:
            return  # a drain is scheduled already and reads until the queue is empty
        self._drain_due = True
        try:
            loop.call_soon_threadsafe(self._drain)
        except RuntimeError:
            pass  # the subscribing loop is closed: nobody can receive this

    def _drain(self) -> None:
        """On the subscribing loop: the waiting events, a budget at a time so other tasks run."""
        self._drain_due = False
        for _ in range(_DRAIN_BUDGET):
            event: Optional[Event] = self._reader.next()
            if event is None:
                return
            self._dispatch(event)
        self._drain_due = True
        assert self._loop is not None
        self._loop.call_soon(self._drain)

    def _dispatch(self, event: Event) -> None:
        with self._running:
            if not self._active:
                return
            cb = self._on_event
            if cb is not None:
                try:
                    cb(event)
                except BaseException as exc:  # SPEC §5: reported, and others still get their events
                    _livecache.report_unraisable(exc, cb)

    # Public -------------------------------------------------------------------------------------
    @property
    def key(self) -> str:
        return str(self._native.key)

    @property
    def active(self) -> bool:
        return self._active

    def snapshot(self) -> Dict[str, Any]:
        """The entry's state (SPEC §5): ``{key, status, version, data, error?, stream}``."""
        return self._native.snapshot()

    def loaded(self) -> Pending:
        """``await sub.loaded()``: the data, at once if present (L2). Raises ``CacheEntryRemoved``
        if the entry is removed first; bound to the entry when called."""
        p = Pending()
        self._native.loaded(p._settle)
        return p

    def events(self) -> AsyncIterator[Event]:
        """The entry's state now (a ``snapshot``, or a ``status`` while there is no data), then
        every later event, as an async iterator. It ends after a ``removed`` event, on
        ``unsubscribe()`` and on ``client.close()``. Its events wait in a queue of the core's,
        bounded by ``queueLimit`` (E4, E5)."""
        return _EventStream(self)

    def unsubscribe(self) -> None:
        """No callback of this subscription starts after this returns (SPEC §5). Idempotent."""
        if not self._active:
            return
        self._active = False
        self._native.unsubscribe()
        if self._reader is not None:
            self._reader.close()
        if self._loop is not None:
            with self._running:
                pass
        self._client._subs.discard(self)

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc: object) -> None:
        self.unsubscribe()

    def __repr__(self) -> str:
        return f"<livecache.Subscription {self.key} {'active' if self._active else 'inactive'}>"


def _weakly(method: Callable[..., None]) -> Callable[..., None]:
    """``method`` of a subscription, called only while the subscription lives: the native side must
    not keep its Python wrapper alive in a cycle the garbage collector cannot see."""
    ref = weakref.WeakMethod(method)

    def call(*args: Any) -> None:
        bound = ref()
        if bound is not None:
            bound(*args)

    return call


# Events one drain of a loop subscription dispatches before it lets the loop's other work run
# (the core's delivery thread gives each subscription the same budget in a row).
_DRAIN_BUDGET = 64


Config = Union[Mapping[str, Any], str]
Hooks = Mapping[str, Mapping[str, Any]]

_clients: "weakref.WeakSet[Client]" = weakref.WeakSet()


class Client:
    """A livecache client (SPEC §7 Python): ``Client(config, hooks=None)``.

    ``config`` is the SPEC §2 shape as a dict or JSON text. ``hooks`` maps an endpoint name to its
    hook functions: ``query_fn(arg)``, ``transform_response(data, arg)``,
    ``on_message(draft, message, arg)``, ``on_cache_entry_added(arg, lifecycle)``,
    ``prepare_headers(headers, context)`` (T1: returns the headers dict to send before every
    request and every stream connect; ``context`` is ``{endpoint, arg, url, kind}``, ``kind`` being
    ``"query"``, ``"mutation"`` or ``"stream"``; may be a coroutine; raising fails that fetch or connect
    attempt), ``mutation_fn(arg)`` (W1), ``provides_tags(data, arg)`` and ``invalidates_tags(result, error,
    arg)`` (W2: plain functions returning a list of ``"Type"`` / ``{"type", "id"}``). Hooks receive ``None`` for "no arg". Also a context manager that closes on exit. ``clock="manual"`` gives
    virtual time that moves only with ``advance(ms)``, for tests of ``keepUnusedDataFor`` (L7).
    """

    def __init__(self, config: Config, hooks: Optional[Hooks] = None, *, clock: str = "system") -> None:
        try:
            loop: Optional[asyncio.AbstractEventLoop] = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        self._runner = _HookRunner(loop)
        self._subs: Set[Subscription] = set()
        self._native = _livecache.NativeClient(config, hooks, self._runner, clock)
        _clients.add(self)

    def subscribe(
        self,
        endpoint: str,
        arg: Any = NO_ARG,
        on_event: Optional[Callable[[Event], Any]] = None,
        polling_interval: Optional[float] = None,
        refetch_on_mount_or_arg_change: Union[bool, float, None] = None,
    ) -> Subscription:
        """Subscribes to ``(endpoint, arg)``; ``arg`` omitted is "no arg", ``None`` is JSON null.

        ``polling_interval`` (ms, P1): the entry refetches every smallest interval among its
        polling subscribers, never with two fetches in flight. ``refetch_on_mount_or_arg_change``
        (P2): ``True``, or seconds: subscribing to an existing entry refetches when its data is
        at least that old (over the endpoint's and the config's setting)."""
        options = {"pollingInterval": polling_interval, "refetchOnMountOrArgChange": refetch_on_mount_or_arg_change}
        sub = Subscription(self, endpoint, arg, on_event, options)
        self._subs.add(sub)
        return sub

    def advance(self, ms: int) -> None:
        """Moves the manual clock (``clock="manual"``) forward and runs what is due by then
        (L7 removals); ``InvalidArgument`` on the system clock."""
        self._native.advance(ms)

    def cache_key(self, endpoint: str, arg: Any = NO_ARG) -> str:
        """The cache key of ``(endpoint, arg)`` (K1)."""
        return self._native.cache_key(endpoint, arg)

    def snapshot(self, endpoint: str, arg: Any = NO_ARG) -> Dict[str, Any]:
        """The entry state of ``(endpoint, arg)``; ``NotFound`` without an entry."""
        return self._native.snapshot(endpoint, arg)

    def update_query_data(self, endpoint: str, arg: Any, recipe: Callable[[Any], Any]) -> HostUpdate:
        """L9: ``recipe(draft)`` mutates the draft (plain dicts and lists) or returns new data."""
        return self._native.update_query_data(endpoint, arg, recipe)

    def patch_query_data(self, endpoint: str, arg: Any, patches: List[Dict[str, Any]]) -> HostUpdate:
        """L9: RFC 6902 operations, applied all or nothing."""
        return self._native.patch_query_data(endpoint, arg, patches)

    def upsert_query_data(self, endpoint: str, arg: Any, data: Any) -> None:
        self._native.upsert_query_data(endpoint, arg, data)

    def refetch(self, endpoint: str, arg: Any = NO_ARG) -> None:
        self._native.refetch(endpoint, arg)

    def send(self, endpoint: str, arg: Any, message: Any) -> Pending:
        """T2: writes ``message`` as one JSON text frame on the entry's open stream. The result
        resolves (to ``None``) once it is written; it raises ``NotConnected`` when the stream is
        not open (nothing is queued) and ``NotFound`` without an entry. Await it, or call
        ``.result(timeout)`` from a thread."""
        p = Pending()
        self._native.send(endpoint, arg, message, p._settle)
        return p

    def prefetch(self, endpoint: str, arg: Any = NO_ARG, if_older_than: Optional[float] = None, force: bool = False) -> None:
        """P3: creates and fetches the entry without subscribing (it goes after
        ``keepUnusedDataFor``), or refetches an existing one when ``force``, or when its data is
        older than ``if_older_than`` seconds."""
        self._native.prefetch(endpoint, arg, {"ifOlderThan": if_older_than, "force": force})

    def reset_api_state(self) -> None:
        """P3: removes every entry (subscribers get ``removed``, streams close with a close
        handshake, lifecycles' ``cache_entry_removed`` resolves); the client stays usable."""
        self._native.reset_api_state()

    def mutate(
        self,
        endpoint: str,
        arg: Any = NO_ARG,
        optimistic: Optional[List[Dict[str, Any]]] = None,
        confirm: Optional[Dict[str, Any]] = None,
        confirm_timeout_ms: Optional[int] = None,
    ) -> Pending:
        """W1: runs the mutation endpoint's request with ``arg``. The result is the response data,
        available once the refetches its ``invalidatesTags`` started have landed (W4), so a
        ``snapshot()`` afterwards shows the server's new state. A failed request raises
        ``MutationError`` (``.status``, ``.data``, ``.error``); a query endpoint raises
        ``WrongEndpointKind``; an arg missing a templated field raises ``InvalidArgument`` and
        sends nothing. Await it, or call ``.result(timeout)`` from a thread.

        ``optimistic`` (W3) lists layers ``{"endpoint", "arg", "message"}`` (the message goes
        through that endpoint's apply rule) or ``{"endpoint", "arg", "recipe"}`` (``recipe(draft)``
        runs once, now, on a copy of the entry's shown data: mutate it or return new data; the
        change it made is the layer, put back as a patch on every server change; if it raises,
        that exception is the result's and nothing is sent). Layers show at once above the
        server data until the server
        confirms them: a stream message matching ``confirm`` (fields compared as ``filter``
        compares), the first refetch after the response, or ``confirm_timeout_ms`` (then an
        ``error`` event with reason ``unconfirmed``). Each overrides the endpoint's config; the
        result is ready once the layers are confirmed or dropped."""
        options = {"optimistic": optimistic, "confirm": confirm, "confirmTimeoutMs": confirm_timeout_ms}
        p = Pending()
        self._native.mutate(endpoint, arg, options, p._settle)
        return p

    def invalidate_tags(self, tags: List[Any]) -> None:
        """W2: refetches the subscribed entries that provide a matching tag (``"Type"`` matches
        every id, ``{"type": ..., "id": ...}`` only that one) and removes the unused ones at once.
        A tag type not in ``tagTypes`` raises ``InvalidArgument`` and nothing is invalidated."""
        self._native.invalidate_tags(tags)

    def reconnect(self, endpoint: str, arg: Any = NO_ARG) -> None:
        """T1: closes the entry's stream (close handshake) and connects again at once, with
        fresh headers; the new connection resyncs (L8)."""
        self._native.reconnect(endpoint, arg)

    def push_message(self, endpoint: str, arg: Any, message: Any) -> None:
        """L10: one message through the endpoint's stream pipeline, as if the stream received it."""
        self._native.push_message(endpoint, arg, message)

    def push_messages(self, endpoint: str, arg: Any, messages: Sequence[Any]) -> None:
        """L10 for a burst: the messages in order, as frames that arrived back to back, in one
        engine step (one event for the burst, E2). Each passes or fails the pipeline on its own (a
        failure is an ``error`` event); a value with no JSON form raises before any is queued."""
        self._native.push_messages(endpoint, arg, messages)

    def push_message_text(self, endpoint: str, arg: Any, text: str) -> None:
        """L10: raw text through the pipeline, exactly as a WebSocket text frame carries it."""
        self._native.push_message_text(endpoint, arg, text)

    def stats(self) -> Dict[str, Any]:
        return self._native.stats()

    @property
    def closed(self) -> bool:
        return bool(self._native.closed)

    def close(self) -> None:
        """Closes every stream and stops every callback before returning (SPEC §8). Idempotent."""
        subs = list(self._subs)
        self._subs.clear()
        try:
            self._native.close()
        finally:
            for sub in subs:
                sub._active = False
            self._runner.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@atexit.register
def _close_all() -> None:
    # Interpreter exit with live subscriptions and open streams: close handshakes now, while
    # callbacks can still run, rather than during finalization.
    for client in list(_clients):
        try:
            client.close()
        except Exception:
            pass
