"""One async Redis client per URL per event loop, closed with its loop; key prefixing; Lua.

Why a helper: ``redis.asyncio`` clients are bound to the loop that created them, and
kite_lab runs code on the caller's loop *and* on its own background loop (sync
methods). ``PerLoop`` keeps one client per (URL, loop). The client is tuned for a
safety layer: short connect/read timeouts and a single immediate retry, so a dead
Redis costs milliseconds (the caller then applies its documented fallback policy)
instead of redis-py's default ten retries with backoff.

Connections never outlive their loop, so no "unclosed socket" ResourceWarning is
printed at exit: the first client made on a loop registers an async generator with
it, and ``loop.shutdown_asyncgens()`` -- which ``asyncio.run`` (and pytest-asyncio)
call before closing a loop -- closes that loop's connections. kite_lab's background
loop is never closed, so an ``atexit`` hook closes its connections while it still runs.

``redis`` is imported on first use only: ``import kite_lab`` stays light.
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import threading
import weakref
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import redis.asyncio

__all__ = [
    "LuaScript",
    "aclose_redis_clients",
    "connection_pool",
    "key_join",
    "redis_client",
]

#: seconds; a reachable Redis answers in well under a millisecond
CONNECT_TIMEOUT = 1.0
COMMAND_TIMEOUT = 2.0
#: connections per (URL, loop); tasks beyond it wait for a free connection
MAX_CONNECTIONS = 128
#: seconds the exit hook waits for a loop to close its connections
EXIT_TIMEOUT = 2.0


class _LoopResources:
    """The clients and pools of one event loop, and the generator that closes them."""

    __slots__ = ("items", "closer")

    def __init__(self) -> None:
        #: (decode_responses, url) -> a client (decoded) or a pool (raw)
        self.items: dict[tuple[bool, str], Any] = {}
        self.closer: Any = None


_loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopResources] = (
    weakref.WeakKeyDictionary()
)
_lock = threading.Lock()


def _make_pool(url: str, *, decode_responses: bool) -> redis.asyncio.BlockingConnectionPool:
    import redis.asyncio
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    # bounded: callers queue for a connection instead of failing "Too many connections"
    return redis.asyncio.BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=COMMAND_TIMEOUT * 5,
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=COMMAND_TIMEOUT,
        decode_responses=decode_responses,
        retry=Retry(NoBackoff(), 1),
        health_check_interval=0,
    )


def _resource(url: str, decoded: bool) -> Any:
    loop = asyncio.get_running_loop()
    resources = _loops.get(loop)
    item = resources.items.get((decoded, url)) if resources is not None else None
    if item is not None:
        return item
    with _lock:
        resources = _loops.get(loop)
        if resources is None:
            resources = _loops[loop] = _LoopResources()
            resources.closer = _watch(loop)
        item = resources.items.get((decoded, url))
        if item is None:
            import redis.asyncio

            pool = _make_pool(url, decode_responses=decoded)
            item = redis.asyncio.Redis(connection_pool=pool) if decoded else pool
            resources.items[(decoded, url)] = item
    return item


def redis_client(url: str) -> redis.asyncio.Redis:
    """The client for ``url`` bound to the running event loop (call inside a coroutine).

    Replies are decoded to ``str``.
    """
    return _resource(url, True)


def connection_pool(url: str) -> redis.asyncio.BlockingConnectionPool:
    """This loop's pool for ``url`` with raw (bytes) replies, for libraries that build their
    own client on a pool (``limits``); closed with its loop like the clients."""
    return _resource(url, False)


async def aclose_redis_clients() -> None:
    """Close the connections of the clients and pools bound to the running loop.

    They stay usable: their pools reconnect on the next command.
    """
    resources = _loops.get(asyncio.get_running_loop())
    if resources is None:
        return
    for item in list(resources.items.values()):
        pool = getattr(item, "connection_pool", item)
        try:
            await pool.disconnect()
        except Exception:  # closing connections to a dead server must not raise
            pass


def _watch(loop: asyncio.AbstractEventLoop) -> AsyncIterator[None]:
    """An async generator, suspended at its ``yield``, that ``loop`` now tracks: closing
    it (``loop.shutdown_asyncgens()``, or the exit hook) closes the loop's connections."""

    async def closer() -> AsyncIterator[None]:
        try:
            yield
        finally:
            await aclose_redis_clients()
            _loops.pop(loop, None)  # nothing here keeps the loop alive any more

    agen = closer()
    try:  # the first step runs the loop's asyncgen "firstiter" hook, then stops at yield
        agen.__anext__().send(None)  # type: ignore[attr-defined]
    except StopIteration:
        pass
    return agen


@atexit.register
def _close_at_exit() -> None:
    """Close the connections of loops still alive at exit (kite_lab's background loop)."""
    for loop, resources in list(_loops.items()):
        if loop.is_closed() or resources.closer is None:
            continue
        close = resources.closer.aclose()
        try:
            if loop.is_running():
                asyncio.run_coroutine_threadsafe(close, loop).result(EXIT_TIMEOUT)
            else:
                loop.run_until_complete(close)
        except Exception:  # a loop that cannot run any more: nothing left to do
            close.close()


def key_join(prefix: str, *parts: str) -> str:
    """``key_join("kite:", "cache", k)`` -> ``kite:cache:k``; the prefix is used as given."""
    return prefix + ":".join(parts)


class LuaScript:
    """A Lua script of ``kite_lab/backends/lua/``, run with EVALSHA on any client.

    Unlike ``client.register_script`` it is not tied to one client, so a store keeps one
    instance and runs it on the client of whichever loop is current. The file is read on
    first use (importlib.resources: works from a wheel or a zip too); ``clock=True``
    prepends ``now.lua``, which defines ``now_s()`` = server TIME + ARGV[1] (the clock's
    offset). NOSCRIPT (a restarted or flushed server) loads the script again.
    """

    __slots__ = ("name", "clock", "_source", "_sha")

    def __init__(self, name: str, *, clock: bool = False) -> None:
        self.name = name
        self.clock = clock
        self._source: str | None = None
        self._sha = ""

    def __repr__(self) -> str:
        return f"LuaScript({self.name!r}, clock={self.clock})"

    @property
    def source(self) -> str:
        if self._source is None:
            source = _read_lua(self.name)
            if self.clock:
                source = _read_lua("now.lua") + source
            self._sha = hashlib.sha1(source.encode("utf-8")).hexdigest()
            self._source = source
        return self._source

    @property
    def sha(self) -> str:
        _ = self.source  # reads the file (and hashes it) once
        return self._sha

    async def __call__(
        self, client: redis.asyncio.Redis, keys: Sequence[str], args: Sequence[Any]
    ) -> Any:
        from redis.exceptions import NoScriptError

        source = self.source
        try:
            return await client.evalsha(self._sha, len(keys), *keys, *args)
        except NoScriptError:
            await client.script_load(source)
            return await client.evalsha(self._sha, len(keys), *keys, *args)


def _read_lua(name: str) -> str:
    from importlib.resources import files

    return files("kite_lab.backends").joinpath("lua", name).read_text(encoding="utf-8")
