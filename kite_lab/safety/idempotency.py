"""Exactly-once execution per operation id, in one process or across every replica.

``ai.idempotency.execute(operation_id=f"order_{id}", func=process_payment, args=(id, amt))``
runs ``process_payment`` once; every later call with that id replays the stored result.

The lifecycle of an operation id (see docs/safety.md):

1. ``begin`` takes an *in-progress lease* (owner token, argument fingerprint, lease TTL).
   A heartbeat extends the lease while ``func`` runs, so only a dead or stalled owner
   loses it.
2. ``func`` succeeds -> the result is serialized *first* (a result that cannot be stored
   fails before anything is written), then stored as *completed* with its own TTL, only
   if the caller still owns the lease.
3. ``func`` raises (or is cancelled) -> nothing is stored and the lease is released, so
   a retry runs ``func`` again.
4. Meanwhile a duplicate with the same arguments waits for the result (up to
   ``wait_timeout``) or raises ``IdempotencyInProgress`` (``on_in_progress="raise"``);
   with different arguments it raises ``IdempotencyConflict``.
5. An owner that died leaves a lease that expires; then exactly one caller reclaims it.
   The dead owner's late write (if it was only stalled) is rejected by the token check.

What AWS Powertools and friends got wrong, and this does not: an in-progress record
always has an expiry; a stale owner cannot overwrite the new owner's result; a reused id
with other arguments is a conflict, not a silent replay.

Redis unreachable: ``begin`` raises ``StoreUnavailable`` and ``func`` does not run (no
dedupe guarantee -> no execution). If Redis goes away after ``func`` ran, its result is
returned but not stored (event ``idempotency:error``); the lease expires on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import inspect
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from kite_lab.backends.clock import SYSTEM_CLOCK, Clock
from kite_lab.backends.redis_guard import RedisGuard
from kite_lab.core.errors import (
    IdempotencyConflict,
    IdempotencyInProgress,
    IdempotencySerializationError,
    InvalidInput,
    StoreUnavailable,
)
from kite_lab.core.runner import run_sync
from kite_lab.core.validate import check_number
from kite_lab.safety.idempotency_memory import MemoryIdempotencyStore
from kite_lab.safety.idempotency_store import IdempotencyStore

if TYPE_CHECKING:
    from kite_lab.core.config import KiteSettings
    from kite_lab.core.events import EventBus

__all__ = [
    "IdempotencyManager",
    "JSONSerializer",
    "Lease",
    "Serializer",
    "StoredResult",
    "build_idempotency",
    "fingerprint",
]

log = logging.getLogger("kite_lab.safety.idempotency")
MAX_OPERATION_ID = 255


class Serializer(Protocol):
    """Turns results into text for the store and back. Must raise on what it cannot store."""

    def dumps(self, value: Any) -> str: ...

    def loads(self, data: str) -> Any: ...


class JSONSerializer:
    """Strict JSON: no NaN, no silent ``str()`` of unknown objects (tuples come back as lists)."""

    def dumps(self, value: Any) -> str:
        return json.dumps(value, allow_nan=False, separators=(",", ":"), ensure_ascii=False)

    def loads(self, data: str) -> Any:
        return json.loads(data)


def _fingerprint_default(value: Any) -> Any:
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    if isinstance(value, set | frozenset):
        return sorted(repr(v) for v in value)
    return f"<{type(value).__qualname__}>{value!r}"


def fingerprint(args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None) -> str:
    """sha256 of the arguments as canonical JSON (non-JSON values by ``to_dict`` or repr)."""
    payload = json.dumps(
        {"args": list(args), "kwargs": dict(kwargs or {})},
        sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_fingerprint_default,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class StoredResult:
    """A completed operation's result, replayed without calling ``func``."""

    operation_id: str
    value: Any
    completed_at: float | None = None
    #: the serialized form, as stored
    data: str = ""


@dataclass(eq=False)
class Lease:
    """The right to run an operation and store its result; held by one owner at a time."""

    manager: IdempotencyManager = field(repr=False)
    operation_id: str
    token: str
    fingerprint: str
    #: seconds the completed result is kept
    ttl: float
    #: seconds the lease lasts without a heartbeat
    lease_ttl: float
    #: True when this lease was taken over from an owner whose lease expired
    reclaimed: bool = False

    async def complete(self, value: Any) -> bool:
        """Store ``value`` as the result. False when the lease was lost to another owner.

        A value the serializer cannot store raises ``IdempotencySerializationError``; the
        lease is released and nothing is stored.
        """
        data = await self._serialize(value)
        return await self.complete_serialized(data)

    async def complete_serialized(self, data: str) -> bool:
        manager = self.manager
        try:
            stored = await manager.store.complete(self.operation_id, self.token, data, self.ttl)
        except Exception as exc:
            manager._store_failed(exc, self.operation_id, "result not stored (the lease "
                                  "expires on its own)")
            return False
        if stored:
            manager._event("completed", self.operation_id)
        else:
            manager._event("error", self.operation_id,
                           detail="lease lost: another owner holds this operation; "
                                  "result not stored")
            log.warning("idempotency %r: lease expired and was taken over; this owner's "
                        "result was not stored (raise lease_ttl?)", self.operation_id)
        return stored

    async def _serialize(self, value: Any) -> str:
        try:
            return self.manager.serializer.dumps(value)
        except Exception as exc:
            await self.release()
            raise IdempotencySerializationError(
                f"the result of operation {self.operation_id!r} cannot be stored by "
                f"{type(self.manager.serializer).__name__}: {exc}. Return JSON-compatible "
                "values (dict/list/str/number/bool/None) or pass another serializer; "
                "nothing was stored and the operation id is free again"
            ) from exc

    async def release(self) -> bool:
        """Give the operation up without a result (a retry runs ``func`` again)."""
        manager = self.manager
        try:
            released = await manager.store.release(self.operation_id, self.token)
        except Exception as exc:
            manager._store_failed(exc, self.operation_id, "lease not released (it expires "
                                  "on its own)")
            return False
        if released:
            manager._event("released", self.operation_id)
        return released

    async def extend(self, seconds: float | None = None) -> bool:
        """Renew the lease for ``seconds`` (default: ``lease_ttl``); False if it was lost."""
        lease = _positive(seconds if seconds is not None else self.lease_ttl, "lease seconds")
        return await self.manager.store.extend(self.operation_id, self.token, lease)

    @contextlib.asynccontextmanager
    async def heartbeat(self) -> AsyncIterator[Lease]:
        """Extend the lease every ``lease_ttl / 3`` seconds while the block runs."""

        async def beat() -> None:
            while True:
                await asyncio.sleep(self.lease_ttl / 3)
                try:
                    if not await self.extend():
                        return  # lost: the owner's write will be rejected
                except Exception as exc:  # Redis blips must not kill the operation
                    log.debug("idempotency heartbeat failed: %r", exc)

        task = asyncio.get_running_loop().create_task(beat())
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class IdempotencyManager:
    """Runs operations at most once per operation id (see the module docstring)."""

    def __init__(
        self,
        store: IdempotencyStore | None = None,
        events: EventBus | None = None,
        *,
        ttl: float = 3600,
        lease_ttl: float = 60.0,
        wait_timeout: float = 30.0,
        on_in_progress: Literal["wait", "raise"] = "wait",
        serializer: Serializer | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.clock = clock or getattr(store, "clock", None) or SYSTEM_CLOCK
        self.store = store if store is not None else MemoryIdempotencyStore(self.clock)
        self.events = events
        self.ttl = _positive(ttl, "ttl")
        self.lease_ttl = _positive(lease_ttl, "lease_ttl")
        self.wait_timeout = _non_negative(wait_timeout, "wait_timeout")
        if on_in_progress not in ("wait", "raise"):
            raise InvalidInput("on_in_progress must be 'wait' or 'raise'")
        self.on_in_progress = on_in_progress
        self.serializer: Serializer = serializer or JSONSerializer()
        #: Redis failures: described, logged and emitted as ``idempotency:error``
        self.guard = RedisGuard("idempotency", events, event="idempotency:error",
                                url=getattr(self.store, "url", None), logger=log)

    @property
    def backend(self) -> str:
        return self.store.backend

    fingerprint = staticmethod(fingerprint)

    # -- the explicit lease API (the HTTP Idempotency-Key header uses it) -------------------
    async def abegin(
        self,
        operation_id: str,
        fingerprint: str | None = None,
        *,
        ttl: float | None = None,
        lease_ttl: float | None = None,
        wait: float | None = None,
    ) -> Lease | StoredResult:
        """Take the lease for ``operation_id``, or get its stored result.

        ``wait``: seconds to wait for an in-flight duplicate (default: ``wait_timeout``,
        or 0 with ``on_in_progress="raise"``); then ``IdempotencyInProgress``.
        """
        operation_id = check_operation_id(operation_id)
        ttl = self.ttl if ttl is None else _positive(ttl, "ttl")
        lease_ttl = self.lease_ttl if lease_ttl is None else _positive(lease_ttl, "lease_ttl")
        if wait is None:
            wait = 0.0 if self.on_in_progress == "raise" else self.wait_timeout
        wait = _non_negative(wait, "wait")
        fp = fingerprint or ""
        deadline = time.monotonic() + wait
        delay = 0.005
        waiting = False
        while True:
            token = uuid.uuid4().hex
            try:
                result = await self.store.begin(operation_id, token, fp, lease_ttl)
            except Exception as exc:
                detail = self._store_failed(exc, operation_id, "operation NOT executed")
                raise StoreUnavailable(
                    f"idempotency store unreachable ({detail}); operation {operation_id!r} "
                    "was NOT executed. Retry when Redis is back (or set "
                    "IDEMPOTENCY_BACKEND=memory for a single process)"
                ) from None
            if result.kind == "acquired":
                self._event("expired" if result.reclaimed else "started", operation_id)
                return Lease(self, operation_id, token, fp, ttl, lease_ttl, result.reclaimed)
            if result.kind == "completed":
                self._event("replayed", operation_id)
                assert result.data is not None
                return StoredResult(operation_id, self.serializer.loads(result.data),
                                    result.completed_at, result.data)
            if result.kind == "conflict":
                self._event("conflict", operation_id)
                raise IdempotencyConflict(
                    f"operation id {operation_id!r} was already used with different "
                    f"arguments ({result.conflict_with}); use a new operation id for a new "
                    "operation, or the same arguments to get the first result"
                )
            remaining = deadline - time.monotonic()
            if not waiting:
                self._event("in_progress", operation_id)
                waiting = True
            if remaining <= 0:
                error = IdempotencyInProgress(
                    f"operation {operation_id!r} is still running in another call"
                    + (f" (waited {wait:.1f} s)" if wait else "")
                    + "; retry later or wait longer (wait=...)"
                )
                error.retry_after = result.lease_remaining  # type: ignore[attr-defined]
                raise error
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 1.5, 0.1)

    # -- execute -------------------------------------------------------------------------
    async def aexecute(
        self,
        operation_id: str,
        func: Callable[..., Any],
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        ttl: float | None = None,
        *,
        lease_ttl: float | None = None,
        wait: float | None = None,
    ) -> Any:
        """Run ``func(*args, **kwargs)`` once for ``operation_id``; replay its result after.

        ``func`` may be sync (run in a worker thread) or async.
        """
        if not callable(func):
            raise TypeError(f"func must be callable, not {type(func).__name__}")
        kwargs = dict(kwargs or {})
        begun = await self.abegin(operation_id, fingerprint(args, kwargs), ttl=ttl,
                                  lease_ttl=lease_ttl, wait=wait)
        if isinstance(begun, StoredResult):
            return begun.value
        lease = begun
        try:
            async with lease.heartbeat():
                value = await _invoke(func, args, kwargs)
        except BaseException:
            await asyncio.shield(lease.release())
            raise
        data = await lease._serialize(value)
        await lease.complete_serialized(data)
        return self.serializer.loads(data)  # the same value every replay will get

    def execute(
        self,
        operation_id: str,
        func: Callable[..., Any],
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        ttl: float | None = None,
        *,
        lease_ttl: float | None = None,
        wait: float | None = None,
    ) -> Any:
        """Sync ``aexecute`` (works inside a running loop; ``func`` may call sync kite_lab)."""
        return run_sync(self.aexecute(operation_id, func, args, kwargs, ttl,
                                      lease_ttl=lease_ttl, wait=wait))

    def idempotent(
        self,
        key: str | Callable[..., str],
        *,
        ttl: float | None = None,
        lease_ttl: float | None = None,
        wait: float | None = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: ``@ai.idempotency.idempotent("order_{order_id}")``.

        ``key`` is a format string over the function's arguments, or a callable taking
        the same arguments and returning the operation id.
        """

        def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
            signature = inspect.signature(func)

            def operation_id(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
                if callable(key):
                    return key(*args, **kwargs)
                bound = signature.bind(*args, **kwargs)
                bound.apply_defaults()
                return key.format(**bound.arguments)

            if inspect.iscoroutinefunction(func):

                @functools.wraps(func)
                async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                    return await self.aexecute(operation_id(args, kwargs), func, args, kwargs,
                                               ttl, lease_ttl=lease_ttl, wait=wait)

                return async_wrapper

            @functools.wraps(func)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                return self.execute(operation_id(args, kwargs), func, args, kwargs, ttl,
                                    lease_ttl=lease_ttl, wait=wait)

            return wrapper

        return decorate

    # -- inspection ----------------------------------------------------------------------
    async def aget(self, operation_id: str) -> StoredResult | None:
        """The stored result of ``operation_id``, or None (not run, running or expired)."""
        record = await self.store.get(check_operation_id(operation_id))
        if record is None or record.get("state") != "completed":
            return None
        return StoredResult(operation_id, self.serializer.loads(record["data"]),
                            record.get("completed_at"), record["data"])

    def get(self, operation_id: str) -> StoredResult | None:
        return run_sync(self.aget(operation_id))

    async def adelete(self, operation_id: str) -> bool:
        """Forget ``operation_id`` (its result or lease): the next call runs ``func`` again."""
        return await self.store.delete(check_operation_id(operation_id))

    def delete(self, operation_id: str) -> bool:
        return run_sync(self.adelete(operation_id))

    async def aclose(self) -> None:
        """Close this loop's Redis connections (they reopen on next use)."""
        if self.store.backend == "redis":
            from kite_lab.backends.redis_client import aclose_redis_clients

            await aclose_redis_clients()

    def _store_failed(self, exc: BaseException, operation_id: str, consequence: str) -> str:
        """Re-raise ``exc`` unless Redis failed; else log, emit ``idempotency:error``."""
        return self.guard.failed(exc, consequence, operation_id=operation_id, outcome="error",
                                 backend=self.store.backend).detail

    def _event(self, outcome: str, operation_id: str, **extra: Any) -> None:
        if self.events is not None:
            self.events.emit(f"idempotency:{outcome}", operation_id=operation_id,
                             outcome=outcome, backend=self.store.backend, **extra)


async def _invoke(func: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
    if inspect.iscoroutinefunction(func):
        return await func(*args, **kwargs)
    # A sync func runs in a worker thread: it may block, and it may call sync kite_lab
    # methods (which need kite_lab's loop to be free).
    result = await asyncio.to_thread(func, *args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


def check_operation_id(operation_id: Any) -> str:
    if not isinstance(operation_id, str):
        raise TypeError(f"operation_id must be a str, not {type(operation_id).__name__}")
    if not operation_id or len(operation_id) > MAX_OPERATION_ID:
        raise InvalidInput(
            f"operation_id must be 1 to {MAX_OPERATION_ID} characters (got "
            f"{len(operation_id)}); use a short stable id such as f'order_{{order_id}}' "
            "or a hash of a longer one"
        )
    return operation_id


def _positive(value: Any, what: str) -> float:
    return check_number(value, f"idempotency {what}", unit="of seconds")


def _non_negative(value: Any, what: str) -> float:
    return check_number(value, f"idempotency {what}", strict=False, unit="seconds")


def build_idempotency(
    settings: KiteSettings, events: EventBus | None = None, *, clock: Clock | None = None
) -> IdempotencyManager:
    """The manager for ``settings.resolved_backend("idempotency")``; keeps IDEMPOTENCY_TTL."""
    clock = clock or SYSTEM_CLOCK
    store: IdempotencyStore
    if settings.resolved_backend("idempotency") == "redis":
        from kite_lab.safety.idempotency_redis import RedisIdempotencyStore

        assert settings.redis_url is not None
        store = RedisIdempotencyStore(settings.redis_url, settings.kite_redis_prefix, clock)
    else:
        store = MemoryIdempotencyStore(clock)
    return IdempotencyManager(store, events, ttl=settings.idempotency_ttl, clock=clock)
