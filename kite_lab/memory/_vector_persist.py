"""Keeping the FAISS index file in step with the SQLite texts, across threads and processes.

Why a separate layer: VectorMemory's public methods stay about documents, while this
base class owns the rules that make persistence safe:
- one writer at a time: a thread lock (re-entrant, so ``batch()`` can nest writes)
  plus an ``flock`` on ``write.lock`` for other processes sharing KITE_HOME;
- the index file is saved atomically when the outermost write ends (also on errors);
- before a write, and before a read when no writer is busy, an index file changed by
  another process is loaded again;
- on load the index is reconciled with SQLite (ids committed there but never indexed
  are embedded; ids deleted there are dropped), so a crash between the SQLite commit
  and the index save loses nothing;
- an unreadable or missing index file, or one built by another embedding model, is
  recorded as a problem that every operation raises until ``rebuild()`` or ``clear()``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from kite_lab.core.errors import ConfigError, IndexCorrupted, KiteError
from kite_lab.memory._threads import RWLock

if TYPE_CHECKING:
    from kite_lab.memory._faiss_index import FaissIndex
    from kite_lab.memory._vector_store import TextStore
    from kite_lab.providers.embeddings import EmbeddingProvider

__all__ = ["IndexKeeper"]

log = logging.getLogger("kite_lab.memory.vector")

#: chunks embedded per batch when catching up or rebuilding
WRITE_BATCH = 256


class IndexKeeper:
    """Base of VectorMemory: the index, its file and the locks around them."""

    directory: Path
    index_path: Path
    store: TextStore
    embeddings: EmbeddingProvider
    index_kind: str

    def _init_persistence(self) -> None:
        self._rw = RWLock()
        self._writer_lock = threading.RLock()
        self._writer_depth = 0
        self._lock_fd: int | None = None
        self._index: FaissIndex | None = None
        self._stat: tuple[int, ...] | None = None
        self._problem: KiteError | None = None
        self._dirty = False

    @contextmanager
    def _writer(self, check: bool = True) -> Iterator[None]:
        self._acquire_writer(blocking=True)
        try:
            if check:
                self._raise_problem()
            yield
        finally:
            self._release_writer()

    def _acquire_writer(self, blocking: bool) -> bool:
        if not self._writer_lock.acquire(blocking=blocking):
            return False
        if self._writer_depth:
            self._writer_depth += 1
            return True
        fd = os.open(self.directory / "write.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if not _flock(fd, blocking):
                os.close(fd)
                self._writer_lock.release()
                return False
        except BaseException:
            os.close(fd)
            self._writer_lock.release()
            raise
        self._lock_fd, self._writer_depth = fd, 1
        try:
            if self._index is None or self._disk_changed():
                self._load()
        except BaseException:
            self._release_writer()
            raise
        return True

    def _release_writer(self) -> None:
        try:
            if self._writer_depth == 1 and self._dirty and self._problem is None:
                self._save()
        finally:
            self._writer_depth -= 1
            if self._writer_depth == 0 and self._lock_fd is not None:
                _funlock(self._lock_fd)
                os.close(self._lock_fd)
                self._lock_fd = None
            self._writer_lock.release()

    def _ready(self) -> None:
        """Before a read: load on first use; adopt another process's newer index if idle."""
        if self._index is None:
            with self._writer(check=False):
                pass
        elif self._disk_changed() and self._acquire_writer(blocking=False):
            self._release_writer()  # acquiring reloaded it
        self._raise_problem()

    def _raise_problem(self) -> None:
        if self._problem is not None:
            raise self._problem

    def _require_index(self) -> FaissIndex:
        self._raise_problem()
        if self._index is None:  # pragma: no cover - guarded by _ready/_writer
            raise IndexCorrupted("the vector index is not loaded")
        return self._index

    def _file_stat(self) -> tuple[int, ...] | None:
        try:
            st = os.stat(self.index_path)
        except FileNotFoundError:
            return None
        return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)

    def _disk_changed(self) -> bool:
        return self._file_stat() != self._stat

    def _fresh_index(self) -> None:
        from kite_lab.memory._faiss_index import FaissIndex

        self._index = FaissIndex(self.embeddings.dimension, self.index_kind)

    def _load(self) -> None:
        """Read the index file and reconcile it with SQLite (writer lock held)."""
        from kite_lab.memory._faiss_index import FaissIndex

        with self._rw.write():
            self._problem, self._dirty = None, False
            self._stat = self._file_stat()
            stored = self.store.count()
            model, dim = self.store.get_meta("model"), self.store.get_meta("dimension")
            current = (self.embeddings.model, str(self.embeddings.dimension))
            if stored and model is not None and (model, dim) != current:
                self._fresh_index()
                self._problem = ConfigError(
                    f"vector memory {self.directory} holds {stored} chunks embedded with "
                    f"{model!r} ({dim} dimensions) but the embedding model is now "
                    f"{self.embeddings.model!r} ({self.embeddings.dimension}): call "
                    "ai.vector_memory.rebuild() to re-embed them, or use another KITE_HOME"
                )
                return
            if self._stat is None:
                self._fresh_index()
                if stored:
                    self._problem = self._corrupted("is missing", stored)
                return
            try:
                self._index = FaissIndex.load(
                    self.index_path, self.embeddings.dimension, self.index_kind
                )
            except (RuntimeError, ValueError, OSError, MemoryError) as exc:
                self._fresh_index()
                self._problem = self._corrupted(f"cannot be read ({_first_line(exc)})", stored)
                log.error("%s", self._problem)
                return
            if self._index.converted_from is not None:  # VECTOR_INDEX changed since the save
                self._dirty = True
        self._reconcile()

    def _corrupted(self, what: str, stored: int) -> IndexCorrupted:
        return IndexCorrupted(
            f"the vector index file {self.index_path} {what}; the {stored} stored chunks are "
            f"safe in {self.store.path}: call ai.vector_memory.rebuild() to re-embed them into "
            "a new index (or clear() to start over)"
        )

    def _reconcile(self) -> None:
        """Make the index hold exactly the chunk ids in SQLite (after a crash, another writer)."""
        import numpy as np

        index = self._index
        assert index is not None
        in_db = np.asarray(self.store.all_ids(), dtype=np.int64)
        in_index = index.ids()
        extra = np.setdiff1d(in_index, in_db, assume_unique=True)
        missing = np.setdiff1d(in_db, in_index, assume_unique=True)
        if not len(extra) and not len(missing):
            return
        log.warning(
            "vector memory %s: catching up the index (%d chunks to embed, %d to drop)",
            self.directory,
            len(missing),
            len(extra),
        )
        for start in range(0, len(missing), WRITE_BATCH):
            rows = self.store.texts(missing[start : start + WRITE_BATCH].tolist())
            vectors = self.embeddings.embed_array([text for _, text in rows])
            with self._rw.write():
                index.add(vectors, (cid for cid, _ in rows))
        with self._rw.write():
            index.remove(extra.tolist())
            self._dirty = True

    def _save(self) -> None:
        assert self._index is not None
        st = self._index.save(self.index_path)
        self._stat = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
        self._dirty = False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[-1] if text else type(exc).__name__)[:200]


def _flock(fd: int, blocking: bool) -> bool:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: one process per KITE_HOME
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _funlock(fd: int) -> None:
    with contextlib.suppress(ImportError, OSError):
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_UN)
