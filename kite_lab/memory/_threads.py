"""Worker-thread twins and a readers-writer lock, shared by the memory stores.

Why: the stores do blocking work (SQLite, FAISS, onnxruntime, a Postgres driver).
Their async methods hand the sync method to a worker thread instead of duplicating it,
and searches share a readers-writer lock so they run in parallel while a write waits.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Concatenate, ParamSpec, TypeVar

__all__ = ["RWLock", "to_thread_twin"]

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")


def to_thread_twin(
    method: Callable[Concatenate[S, P], R],
) -> Callable[Concatenate[S, P], Awaitable[R]]:
    """``async def a<name>(...)``: runs the sync ``method`` in a worker thread."""

    async def twin(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return await asyncio.to_thread(method, self, *args, **kwargs)

    functools.update_wrapper(twin, method)
    twin.__name__ = f"a{method.__name__}"
    twin.__qualname__ = twin.__qualname__.rsplit(".", 1)[0] + f".a{method.__name__}"
    twin.__doc__ = (
        f"Async form of ``{method.__name__}``, run in a worker thread.\n\n{method.__doc__ or ''}"
    )
    return twin


class RWLock:
    """Many readers or one writer; a waiting writer holds back new readers."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writing or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writing or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()
