"""Vector memory: documents chunked, embedded and searched with FAISS, persisted under KITE_HOME.

Why it is built this way:
- Texts and metadata live in SQLite (``store.sqlite3``), vectors in a FAISS file
  (``index.faiss``) next to it. SQLite is committed first and is the truth; the index
  is derived, saved atomically after each write call, and reconciled with SQLite on
  load. A crash between the two costs a re-embedding of the missing chunks, never data.
- A damaged index file is never replaced silently: operations raise ``IndexCorrupted``
  until ``rebuild()`` re-embeds the stored texts (or ``clear()`` starts over).
- Writers take a process lock (``flock``) and a thread lock, so several processes
  (uvicorn workers, a notebook next to the service) can share one KITE_HOME; readers
  never wait for a writer's embedding work, and pick up another process's saved index.
- Searches share a readers-writer lock and run FAISS with one thread (see _faiss_index).

Heavy packages (faiss, numpy) load on first use.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kite_lab.core.errors import ConfigError, InvalidInput
from kite_lab.core.validate import check_int
from kite_lab.memory._threads import to_thread_twin
from kite_lab.memory._vector_input import check_doc_id, check_metadata, check_top_k, unpack_document
from kite_lab.memory._vector_persist import WRITE_BATCH, IndexKeeper
from kite_lab.memory._vector_store import (
    ChunkRow,
    PendingDocument,
    TextStore,
    compile_filter,
)
from kite_lab.memory.chunking import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE, chunk_text
from kite_lab.providers.embeddings import check_text

if TYPE_CHECKING:
    import numpy as np

    from kite_lab.core.config import KiteSettings
    from kite_lab.core.events import EventBus
    from kite_lab.providers.embeddings import EmbeddingProvider

__all__ = ["Hit", "StoredDocument", "VectorMemory", "build_vector_memory"]

log = logging.getLogger("kite_lab.memory.vector")


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result: a chunk, its document and its cosine similarity to the query."""

    doc_id: str
    chunk_id: str
    text: str
    score: float
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "doc_id": self.doc_id,
            "chunk_id": self.chunk_id,
            "text": self.text,
            "score": self.score,
            "metadata": dict(self.metadata),
        }


@dataclass(frozen=True, slots=True)
class StoredDocument:
    """A document as stored: its full text, metadata and chunk texts (``doc_id#n``)."""

    doc_id: str
    text: str
    metadata: dict[str, Any]
    chunks: list[str]
    created_at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "doc_id": self.doc_id,
            "text": self.text,
            "metadata": dict(self.metadata),
            "chunks": list(self.chunks),
            "created_at": self.created_at,
        }


class VectorMemory(IndexKeeper):
    """Add, search and delete documents; see the module docstring for the design."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        embeddings: EmbeddingProvider,
        events: EventBus | None = None,
        *,
        index_kind: str = "flat",
        max_chunks: int | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        chunk_overlap: int = DEFAULT_CHUNK_OVERLAP,
        clock: Any = time.time,
    ) -> None:
        if index_kind not in ("flat", "hnsw"):
            raise ConfigError(f"VECTOR_INDEX must be flat or hnsw, not {index_kind!r}")
        if max_chunks is not None:
            check_int(max_chunks, "VECTOR_MAX_CHUNKS", error=ConfigError)
        chunk_text("probe", chunk_size, chunk_overlap)  # validates both numbers early
        self.directory = Path(directory).expanduser().absolute()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.index_path = self.directory / "index.faiss"
        self.embeddings = embeddings
        self.events = events
        self.index_kind = index_kind
        self.max_chunks = max_chunks
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self._clock = clock
        self.store = TextStore(self.directory / "store.sqlite3")
        self._init_persistence()

    # -- writing ----------------------------------------------------------------------
    def add_document(
        self, doc_id: str, text: str, metadata: Mapping[str, Any] | None = None
    ) -> list[str]:
        """Chunk, embed and store one document (replacing one with the same id); chunk ids."""
        doc = self._prepare(doc_id, text, metadata)
        with self._writer():
            self._write_group([doc])
        return [f"{doc.doc_id}#{n}" for n in range(len(doc.chunks))]

    def add_documents(self, items: Iterable[Any]) -> int:
        """Add many documents, embedded in batches; returns the number of chunks stored.

        Items are dicts ``{"doc_id", "text", "metadata"?}`` or tuples
        ``(doc_id, text[, metadata])``. The index is saved once, at the end, also when
        an item fails halfway (the items before it are kept).
        """
        if isinstance(items, str | bytes | Mapping):
            raise TypeError("items must be an iterable of documents; use add_document for one")
        total = 0
        with self._writer():
            group: list[PendingDocument] = []
            pending = 0
            for item in items:
                try:
                    doc = self._prepare(*unpack_document(item))
                except Exception:
                    if group:  # keep the valid documents before the bad one
                        total += self._write_group(group)
                    raise
                group.append(doc)
                pending += len(doc.chunks)
                if pending >= WRITE_BATCH:
                    total += self._write_group(group)
                    group, pending = [], 0
            if group:
                total += self._write_group(group)
        return total

    @contextmanager
    def batch(self) -> Iterator[VectorMemory]:
        """Hold the write lock and save the index once, on exit, for many writes."""
        with self._writer():
            yield self

    def delete_document(self, doc_id: str) -> int:
        """Remove a document and its chunks; returns how many chunks went (0 if unknown)."""
        doc_id = check_doc_id(doc_id)
        with self._writer():
            removed = self._delete(lambda conn: self.store.delete_documents(conn, [doc_id]))
        self._emit("memory:delete", doc_ids=[doc_id], chunks=len(removed), reason="delete")
        return len(removed)

    def prune(self, older_than: timedelta | float | datetime) -> int:
        """Remove documents added more than ``older_than`` ago (or before a datetime).

        Returns how many chunks were removed.
        """
        if isinstance(older_than, datetime):
            cutoff = older_than.timestamp()
        elif isinstance(older_than, timedelta):
            cutoff = self._clock() - older_than.total_seconds()
        elif isinstance(older_than, int | float) and not isinstance(older_than, bool):
            cutoff = self._clock() - float(older_than)
        else:
            raise TypeError("older_than must be a timedelta, seconds (float) or a datetime")
        with self._writer():
            doc_ids: list[str] = []

            def _prune(conn: Any) -> list[int]:
                doc_ids.extend(self.store.doc_ids_older_than(conn, cutoff))
                return self.store.delete_documents(conn, doc_ids)

            removed = self._delete(_prune)
        if removed:
            self._emit("memory:delete", doc_ids=doc_ids[:50], chunks=len(removed), reason="prune")
        return len(removed)

    def clear(self) -> int:
        """Remove everything (also from a damaged index); returns how many chunks went."""
        with self._writer(check=False):
            with self._rw.write():
                with self.store.write() as conn:
                    removed = self.store.clear(conn)
                    self._record_model(conn)
                self._fresh_index()
                self._problem = None
                self._dirty = True
        self._emit("memory:delete", doc_ids=[], chunks=len(removed), reason="clear")
        return len(removed)

    def rebuild(self) -> int:
        """Re-embed every stored chunk into a new index (after damage or a model change)."""
        from kite_lab.memory._faiss_index import FaissIndex

        started = time.perf_counter()
        with self._writer(check=False):
            fresh = FaissIndex(self.embeddings.dimension, self.index_kind)
            count = 0
            for rows in self.store.iter_chunks(WRITE_BATCH):
                vectors = self.embeddings.embed_array([text for _, text in rows])
                fresh.add(vectors, (cid for cid, _ in rows))
                count += len(rows)
            with self._rw.write():
                with self.store.write() as conn:
                    self._record_model(conn)
                self._index, self._problem, self._dirty = fresh, None, True
        log.info("vector memory %s rebuilt: %d chunks", self.directory, count)
        self._emit("memory:rebuild", chunks=count, latency_s=time.perf_counter() - started)
        return count

    # -- reading ----------------------------------------------------------------------
    def search(
        self, query: str, top_k: int = 5, filter: Mapping[str, Any] | None = None
    ) -> list[Hit]:
        """The ``top_k`` chunks most similar to ``query`` (cosine), optionally filtered.

        ``filter={"source": "a.md"}`` keeps chunks whose document metadata equals that
        value, ``{"lang": ["en", "fr"]}`` any of those values; several keys must all
        match; the key ``doc_id`` filters on the document id.
        """
        check_text(query, "query")
        check_top_k(top_k)
        where = compile_filter(filter) if filter is not None else None
        vector = self.embeddings.embed_array([query])[0]
        return self._search(vector, top_k, where, query_chars=len(query))

    def search_vector(
        self,
        vector: Sequence[float] | np.ndarray,
        top_k: int = 5,
        filter: Mapping[str, Any] | None = None,
    ) -> list[Hit]:
        """Like ``search`` for a query vector you embedded yourself (normalised here)."""
        import numpy as np

        check_top_k(top_k)
        where = compile_filter(filter) if filter is not None else None
        array = np.asarray(vector, dtype=np.float32).reshape(-1)
        if array.shape[0] != self.embeddings.dimension:
            raise InvalidInput(
                f"vector has {array.shape[0]} dimensions, "
                f"the memory holds {self.embeddings.dimension}"
            )
        norm = float(np.linalg.norm(array))
        if norm > 0:
            array = array / norm
        return self._search(array, top_k, where, query_chars=None)

    def _search(
        self,
        vector: np.ndarray,
        top_k: int,
        where: tuple[str, list[Any]] | None,
        query_chars: int | None,
    ) -> list[Hit]:
        import numpy as np

        started = time.perf_counter()
        self._ready()
        hits: list[Hit] = []
        with self._rw.read():
            index = self._require_index()
            candidates = None
            if where is not None:
                candidates = np.asarray(self.store.filter_ids(where), dtype=np.int64)
            if candidates is None or len(candidates):
                scores, ids = index.search(vector, top_k, candidates)
                found = [int(i) for i in ids if i >= 0]
                rows = self.store.rows(found)
                for score, cid in zip(scores, ids, strict=False):
                    row = rows.get(int(cid))
                    if row is not None:
                        hits.append(_hit(row, float(score)))
        self._emit(
            "memory:search",
            top_k=top_k,
            hits=len(hits),
            filtered=where is not None,
            query_chars=query_chars,
            latency_s=time.perf_counter() - started,
        )
        return hits

    def get(self, doc_id: str) -> StoredDocument | None:
        """The stored document, or None."""
        found = self.store.document(check_doc_id(doc_id))
        if found is None:
            return None
        text, metadata, created_at, chunks = found
        return StoredDocument(doc_id, text, metadata, chunks, created_at)

    def count(self) -> int:
        """How many chunks are stored."""
        return self.store.count()

    def count_documents(self) -> int:
        return self.store.count_documents()

    def list_documents(self) -> list[str]:
        """Every doc_id, oldest first."""
        return self.store.doc_ids()

    def __len__(self) -> int:
        return self.count()

    def __contains__(self, doc_id: object) -> bool:
        return isinstance(doc_id, str) and self.store.document(doc_id) is not None

    def stats(self) -> dict[str, Any]:
        index = self._index
        return {
            "directory": str(self.directory),
            "chunks": self.count(),
            "documents": self.count_documents(),
            "index": self.index_kind,
            "indexed": index.live_count() if index is not None else None,
            "model": self.embeddings.model,
            "dimension": self.embeddings.dimension,
            "max_chunks": self.max_chunks,
            "problem": str(self._problem) if self._problem else None,
        }

    def close(self) -> None:
        self.store.close()

    def __repr__(self) -> str:
        return f"<VectorMemory {self.directory} model={self.embeddings.model!r}>"

    # async forms: the work is CPU/disk bound, so it runs in a worker thread
    aadd_document = to_thread_twin(add_document)
    aadd_documents = to_thread_twin(add_documents)
    asearch = to_thread_twin(search)
    asearch_vector = to_thread_twin(search_vector)
    adelete_document = to_thread_twin(delete_document)
    aprune = to_thread_twin(prune)
    aclear = to_thread_twin(clear)
    arebuild = to_thread_twin(rebuild)
    aget = to_thread_twin(get)
    acount = to_thread_twin(count)

    # -- internals: preparing and writing ---------------------------------------------
    def _prepare(self, doc_id: Any, text: Any, metadata: Any = None) -> PendingDocument:
        doc_id = check_doc_id(doc_id)
        check_text(text, "text")
        meta = check_metadata(metadata)
        chunks = chunk_text(text, self.chunk_size, self.chunk_overlap)
        return PendingDocument(doc_id, text, meta, chunks, float(self._clock()))

    def _write_group(self, docs: list[PendingDocument]) -> int:
        """Embed (outside the search lock), then commit SQLite and update the index."""
        started = time.perf_counter()
        latest: dict[str, PendingDocument] = {}
        for doc in docs:  # the same doc_id twice in one group: the later one wins
            latest.pop(doc.doc_id, None)
            latest[doc.doc_id] = doc
        docs = list(latest.values())
        vectors = self.embeddings.embed_array([c for doc in docs for c in doc.chunks])
        with self._rw.write():
            index = self._require_index()
            with self.store.write() as conn:
                self._record_model(conn)
                removed, added = self.store.replace(conn, docs)
                evicted = self._evictable(conn)
                if evicted:
                    self.store.delete_chunks(conn, evicted)
            self._dirty = True
            index.remove(removed)
            index.add(vectors, added)
            index.remove(evicted)
        chunks = len(added)
        self._emit(
            "memory:add",
            doc_ids=[d.doc_id for d in docs][:50],
            documents=len(docs),
            chunks=chunks,
            chars=sum(len(d.text) for d in docs),
            latency_s=time.perf_counter() - started,
        )
        if evicted:
            self._emit("memory:delete", doc_ids=[], chunks=len(evicted), reason="evict")
        return chunks

    def _evictable(self, conn: Any) -> list[int]:
        if self.max_chunks is None:
            return []
        total = int(conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0])
        excess = total - self.max_chunks
        return self.store.oldest_chunk_ids(conn, excess) if excess > 0 else []

    def _delete(self, action: Any) -> list[int]:
        with self._rw.write():
            index = self._require_index()
            with self.store.write() as conn:
                removed: list[int] = action(conn)
            if removed:
                self._dirty = True
                index.remove(removed)
        return removed

    def _record_model(self, conn: Any) -> None:
        self.store.set_meta(conn, "model", self.embeddings.model)
        self.store.set_meta(conn, "dimension", str(self.embeddings.dimension))

    def _emit(self, name: str, **data: Any) -> None:
        if self.events is not None:
            self.events.emit(name, store=str(self.directory), **data)


# -- helpers -------------------------------------------------------------------------


def _hit(row: ChunkRow, score: float) -> Hit:
    return Hit(row.doc_id, row.chunk_id, row.text, score, row.metadata)


def build_vector_memory(
    settings: KiteSettings,
    embeddings: EmbeddingProvider,
    events: EventBus | None = None,
    name: str = "default",
) -> VectorMemory:
    """The vector memory for ``settings`` (files under KITE_HOME/vector/<name>)."""
    if settings.vector_backend != "faiss":
        raise ConfigError(f"VECTOR_BACKEND {settings.vector_backend!r} is not supported; use faiss")
    if embeddings.dimension != settings.vector_dimension:
        raise ConfigError(
            f"VECTOR_DIMENSION is {settings.vector_dimension} but embedding model "
            f"{embeddings.model!r} produces {embeddings.dimension}-dimensional vectors: set "
            f"VECTOR_DIMENSION={embeddings.dimension}"
        )
    if not name or "/" in name or name.startswith("."):
        raise InvalidInput(f"vector memory name {name!r} must be a plain folder name")
    return VectorMemory(
        Path(settings.kite_home) / "vector" / name,
        embeddings,
        events,
        index_kind=settings.vector_index,
        max_chunks=settings.vector_max_chunks,
    )
