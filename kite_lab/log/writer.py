"""The one background thread that writes every call log of the process, in batches.

Why a thread and a bounded queue: a call only appends a small tuple to a queue (about a
microsecond) and returns; turning it into a row (JSON, redaction, hashing) and writing
it happen on this thread, in one transaction per batch, so neither the event loop nor
the caller ever waits for a disk or a database. When the writer falls behind and the
queue is full, rows are dropped and counted rather than slowing calls down. One thread
serves every log of the process (each Kite's, each KITE_HOME), and ``atexit`` flushes it.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, Protocol

from .record import CallRecord
from .store import CallLogStore

__all__ = ["LogWriter", "Sink", "get_writer"]

log = logging.getLogger("kite_lab.log")

QUEUE_SIZE = 100_000
BATCH_SIZE = 2_000
#: how long the writer waits for more rows before writing a batch (a flush does not wait)
LINGER_S = 0.1


class Sink(Protocol):
    """A log the writer serves (``kite_lab.log.stage.CallLog``)."""

    store: CallLogStore

    def serialize(self, item: Any) -> CallRecord | None: ...

    def failed(self, exc: BaseException) -> None: ...

    def written(self, count: int) -> None: ...


class _Marker:
    __slots__ = ("done", "action")

    def __init__(self, action: Callable[[], None] | None = None) -> None:
        self.done = threading.Event()
        self.action = action


class LogWriter:
    """A daemon thread draining a bounded queue of ``(sink, item)`` into the stores."""

    def __init__(self, queue_size: int = QUEUE_SIZE, batch_size: int = BATCH_SIZE,
                 linger: float = LINGER_S) -> None:
        self._queue: queue.Queue[tuple[Sink | None, Any]] = queue.Queue(queue_size)
        self._batch_size = batch_size
        self._linger = linger
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def submit(self, sink: Sink, item: Any) -> bool:
        """Queue ``item`` for ``sink``; False (never a wait) when the queue is full."""
        if self._thread is None:
            self._start()
        try:
            self._queue.put_nowait((sink, item))
        except queue.Full:
            return False
        return True

    def flush(self, timeout: float = 10.0, then: Callable[[], None] | None = None) -> bool:
        """Wait until everything queued before now is written (or ``timeout`` passes)."""
        if self._thread is None:
            if then is not None:
                then()
            return True
        marker = _Marker(then)
        try:
            self._queue.put((None, marker), timeout=timeout)
        except queue.Full:
            return False
        self._wake.set()
        return marker.done.wait(timeout)

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="kite-call-log", daemon=True)
                thread.start()
                self._thread = thread

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            # Linger so rows arrive in batches: one transaction and one wake-up (one GIL
            # hand-over) per batch instead of per call. The wait is on an Event that only a
            # flush sets, so calls queueing rows meanwhile wake nobody.
            if batch[0][0] is not None:
                self._wake.wait(self._linger)
            self._wake.clear()
            while len(batch) < self._batch_size:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._write(batch)
            except Exception:  # never let the thread die: the next batch may succeed
                log.exception("call log writer failed")

    def _write(self, batch: list[tuple[Sink | None, Any]]) -> None:
        pending: dict[int, tuple[Sink, list[CallRecord]]] = {}

        def drain() -> None:
            for sink, records in pending.values():
                try:
                    sink.store.write(records)
                except Exception as exc:  # disk full, corrupt file, Postgres down...
                    sink.failed(exc)
                else:
                    sink.written(len(records))
            pending.clear()

        for sink, item in batch:
            if sink is None:  # a flush marker: write what came before it, then signal
                drain()
                if item.action is not None:
                    try:
                        item.action()
                    except Exception:
                        log.exception("call log flush action failed")
                item.done.set()
                continue
            try:
                record = sink.serialize(item)
            except Exception as exc:
                sink.failed(exc)
                continue
            if record is not None:
                pending.setdefault(id(sink), (sink, []))[1].append(record)
        drain()


_writer: LogWriter | None = None
_writer_lock = threading.Lock()


def get_writer() -> LogWriter:
    """The process's writer (started on first use, flushed at exit)."""
    global _writer
    if _writer is None:
        with _writer_lock:
            if _writer is None:
                _writer = LogWriter()
                atexit.register(_at_exit)
    return _writer


#: called after the last flush at exit (the stores close their connections)
exit_hooks: list[Callable[[], None]] = []


def _at_exit() -> None:
    def close_all() -> None:
        for hook in exit_hooks:
            hook()

    if _writer is not None and not _writer.flush(5.0, then=close_all):
        close_all()
