"""Run async code from sync code, also inside a running event loop (Jupyter).

Async is the primary path. Sync methods submit their coroutine to one background
event-loop thread owned by kite_lab and wait for it. That works whether or not the
calling thread runs a loop, needs no nest_asyncio, and never blocks another loop's tasks
while waiting (the caller's thread waits, the background loop works).

Clients bound to an event loop (httpx, redis.asyncio) must not be shared across loops:
``PerLoop`` keeps one instance per running loop.
"""

from __future__ import annotations

import atexit
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    import asyncio
    import queue

__all__ = ["PerLoop", "background_loop", "iterate_sync", "run_sync"]

T = TypeVar("T")

_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
_lock = threading.Lock()


def background_loop() -> asyncio.AbstractEventLoop:
    """The shared background loop, started on first use in a daemon thread."""
    global _loop, _thread
    import asyncio  # here, not at module level: keeps `import kite_lab` light

    if _loop is not None and _thread is not None and _thread.is_alive():
        return _loop
    with _lock:
        if _loop is None or _thread is None or not _thread.is_alive():
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def _run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            _thread = threading.Thread(target=_run, name="kite-lab-loop", daemon=True)
            _thread.start()
            ready.wait()
            _loop = loop
    return _loop


def _on_background_thread() -> bool:
    return _thread is not None and threading.current_thread() is _thread


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion from sync code and return its result.

    Ctrl-C (KeyboardInterrupt, a kernel interrupt) cancels the coroutine.
    """
    if _on_background_thread():
        coro.close()
        raise RuntimeError(
            "a sync kite_lab method was called from inside kite_lab's own event loop; "
            "use the async method (await ai.acomplete(...)) there"
        )
    import asyncio

    future = asyncio.run_coroutine_threadsafe(coro, background_loop())
    try:
        while True:
            try:  # a timeout keeps the wait interruptible by signals
                return future.result(timeout=0.25)
            except TimeoutError:
                continue
    except BaseException:
        future.cancel()
        raise


def iterate_sync(agen: AsyncIterator[T]) -> Iterator[T]:
    """Iterate an async iterator from sync code, item by item as they arrive."""
    import queue

    items: queue.Queue[tuple[str, Any]] = queue.Queue()

    async def _pump() -> None:
        try:
            async for item in agen:
                items.put(("item", item))
        except BaseException as exc:  # delivered to the consumer thread
            items.put(("error", exc))
        else:
            items.put(("done", None))

    import asyncio

    future = asyncio.run_coroutine_threadsafe(_pump(), background_loop())
    try:
        while True:
            try:
                kind, value = items.get(timeout=0.25)
            except queue.Empty:
                continue
            if kind == "item":
                yield value
            elif kind == "error":
                raise value
            else:
                return
    finally:
        future.cancel()


class PerLoop(Generic[T]):
    """One instance of a loop-bound resource per running event loop."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._instances: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def get(self) -> T:
        import asyncio

        loop = asyncio.get_running_loop()
        instance = self._instances.get(loop)
        if instance is None:
            with self._lock:
                instance = self._instances.get(loop)
                if instance is None:
                    instance = self._factory()
                    self._instances[loop] = instance
        return instance

    def instances(self) -> list[T]:
        return list(self._instances.values())

    def clear(self) -> None:
        with self._lock:
            self._instances.clear()


async def gather_bounded(
    factories: list[Callable[[], Awaitable[T]]], concurrency: int
) -> list[T | BaseException]:
    """Run awaitables with at most ``concurrency`` in flight; exceptions are returned."""
    import asyncio

    semaphore = asyncio.Semaphore(max(1, concurrency))

    async def _one(factory: Callable[[], Awaitable[T]]) -> T:
        async with semaphore:
            return await factory()

    return await asyncio.gather(*(_one(f) for f in factories), return_exceptions=True)


@atexit.register
def _stop_background_loop() -> None:
    if _loop is not None and _loop.is_running():
        _loop.call_soon_threadsafe(_loop.stop)
