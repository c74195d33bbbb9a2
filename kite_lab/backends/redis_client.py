"""One async Redis client per URL per event loop, key prefixing and Lua scripts.

Why a helper: ``redis.asyncio`` clients are bound to the loop that created them, and
kite_lab runs code on the caller's loop *and* on its own background loop (sync
methods). ``PerLoop`` keeps one client per (URL, loop). The client is tuned for a
safety layer: short connect/read timeouts and a single immediate retry, so a dead
Redis costs milliseconds (the caller then applies its documented fallback policy)
instead of redis-py's default ten retries with backoff.

``redis`` is imported on first use only: ``import kite_lab`` stays light.
"""

from __future__ import annotations

import hashlib
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kite_lab.core.config import mask_url
from kite_lab.core.runner import PerLoop

if TYPE_CHECKING:
    import redis.asyncio

__all__ = [
    "LuaScript",
    "aclose_redis_clients",
    "describe_redis_error",
    "is_redis_error",
    "key_join",
    "redis_client",
]

#: seconds; a reachable Redis answers in well under a millisecond
CONNECT_TIMEOUT = 1.0
COMMAND_TIMEOUT = 2.0
#: connections per (URL, loop); tasks beyond it wait for a free connection
MAX_CONNECTIONS = 128

_clients: dict[str, PerLoop[Any]] = {}
_clients_lock = threading.Lock()


def _make_client(url: str) -> redis.asyncio.Redis:
    import redis.asyncio
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=COMMAND_TIMEOUT * 5,
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=COMMAND_TIMEOUT,
        decode_responses=True,
        retry=Retry(NoBackoff(), 1),
        health_check_interval=0,
    )
    return redis.asyncio.Redis(connection_pool=pool)


def redis_client(url: str) -> redis.asyncio.Redis:
    """The client for ``url`` bound to the running event loop (call inside a coroutine)."""
    per_loop = _clients.get(url)
    if per_loop is None:
        with _clients_lock:
            per_loop = _clients.get(url)
            if per_loop is None:
                per_loop = PerLoop(lambda: _make_client(url))
                _clients[url] = per_loop
    return per_loop.get()


async def aclose_redis_clients() -> None:
    """Close the connections of the clients bound to the running loop.

    The clients stay usable: their pools reconnect on the next command.
    """
    for per_loop in list(_clients.values()):
        client = per_loop.get()  # this loop's client; creating one opens no connection
        try:
            await client.connection_pool.disconnect()
        except Exception:  # closing connections to a dead server must not raise
            pass


def key_join(prefix: str, *parts: str) -> str:
    """``key_join("kite:", "cache", k)`` -> ``kite:cache:k``; the prefix is used as given."""
    return prefix + ":".join(parts)


def is_redis_error(exc: BaseException) -> bool:
    """True for errors that mean "Redis is unreachable or misbehaving", not our bug."""
    exceptions = sys.modules.get("redis.exceptions")
    if exceptions is not None and isinstance(exc, exceptions.RedisError):
        return True
    return isinstance(exc, OSError | TimeoutError)


def describe_redis_error(exc: BaseException, url: str | None = None) -> str:
    """A short, secret-free description of a Redis failure for events and messages."""
    where = f" at {mask_url(url)}" if url else ""
    text = str(exc).splitlines()[0][:160] if str(exc) else ""
    return f"{type(exc).__name__}{where}: {text}" if text else f"{type(exc).__name__}{where}"


class LuaScript:
    """A Lua script run with EVALSHA on any client, loaded on NOSCRIPT.

    Unlike ``client.register_script`` it is not tied to one client, so a store can keep
    one instance and run it on the client of whichever loop is current.
    """

    __slots__ = ("source", "sha")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode("utf-8")).hexdigest()

    async def __call__(
        self, client: redis.asyncio.Redis, keys: Sequence[str], args: Sequence[Any]
    ) -> Any:
        from redis.exceptions import NoScriptError

        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            await client.script_load(self.source)
            return await client.evalsha(self.sha, len(keys), *keys, *args)


#: Lua prelude: server time in seconds plus the caller's clock offset (ARGV[1]).
LUA_NOW = """
local function now_s()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(ARGV[1])
end
"""
