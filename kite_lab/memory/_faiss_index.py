"""The FAISS half of vector memory: an id-mapped inner-product index and its file.

Why these choices:
- ``IndexIDMap2`` so FAISS ids are the chunk row ids in SQLite (and vectors can be
  reconstructed by id); flat inner product by default: exact, and ~7 ms per query on
  100k x 384 with one thread. HNSW (VECTOR_INDEX=hnsw) for large collections.
- Vectors are L2-normalised, so inner product is cosine similarity.
- HNSW cannot remove vectors; deleted ids become tombstones excluded from searches with
  an id selector and are compacted away once they are a fifth of the index.
- Single queries run FAISS with one OpenMP thread: a query over 100k vectors is too
  small to split, and on a 2-core machine that also runs onnxruntime, 2 threads were
  measured 2x slower (15 ms vs 7 ms here, 59-75 ms vs 25 ms under load). OpenMP's
  thread count is per calling thread, so it is set around each search and restored.
- The file is written to a temporary name, fsynced and renamed: a reader or a crash
  sees the old index or the new one, never half of one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import faiss
import numpy as np

__all__ = ["FaissIndex"]

HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 64
#: a filtered HNSW search over at most this many candidates is computed exactly
EXACT_FILTER_LIMIT = 20_000
_COMPACT_RATIO = 0.2
# faiss's type stubs lack the search-parameter classes' SWIG attributes and keywords
_search_parameters: Any = faiss.SearchParameters
_search_parameters_hnsw: Any = getattr(faiss, "SearchParametersHNSW")  # noqa: B009


class FaissIndex:
    """One FAISS index with chunk-id mapping; not thread-safe (VectorMemory locks)."""

    def __init__(self, dimension: int, kind: str = "flat", index: Any = None) -> None:
        self.dimension = dimension
        self.kind = kind
        self.index = index if index is not None else self._new()
        self.tombstones: set[int] = set()
        #: the kind read from disk when ``load`` converted it (the file needs saving)
        self.converted_from: str | None = None

    def _new(self) -> Any:
        inner: Any
        if self.kind == "hnsw":
            inner = faiss.IndexHNSWFlat(self.dimension, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            inner.hnsw.efSearch = HNSW_EF_SEARCH
        else:
            inner = faiss.IndexFlatIP(self.dimension)
        return faiss.IndexIDMap2(inner)

    # -- files ------------------------------------------------------------------------
    @classmethod
    def load(cls, path: Path, dimension: int, kind: str) -> FaissIndex:
        """Read ``path``; RuntimeError/ValueError when it is damaged or does not fit."""
        index = faiss.read_index(str(path))
        if not isinstance(index, faiss.IndexIDMap2):
            raise ValueError(f"expected an IndexIDMap2, found {type(index).__name__}")
        if index.d != dimension:
            raise ValueError(f"the index holds {index.d}-dimensional vectors, not {dimension}")
        found = "hnsw" if isinstance(faiss.downcast_index(index.index), faiss.IndexHNSW) else "flat"
        loaded = cls(dimension, found, index)
        if found != kind:  # VECTOR_INDEX changed: convert, keeping every vector
            loaded = loaded.converted(kind)
            loaded.converted_from = found
        return loaded

    def save(self, path: Path) -> os.stat_result:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            faiss.write_index(self.index, str(tmp))
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return os.stat(path)

    # -- contents ---------------------------------------------------------------------
    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def ids(self) -> np.ndarray:
        return faiss.vector_to_array(self.index.id_map).astype(np.int64)

    def live_count(self) -> int:
        return self.ntotal - len(self.tombstones)

    def add(self, vectors: np.ndarray, ids: Iterable[int]) -> None:
        id_array = np.fromiter(ids, dtype=np.int64)
        if len(id_array):
            self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), id_array)

    def remove(self, ids: Iterable[int]) -> None:
        id_array = np.fromiter(ids, dtype=np.int64)
        if not len(id_array):
            return
        if self.kind == "hnsw":
            self.tombstones.update(int(i) for i in id_array)
            if len(self.tombstones) > max(100, _COMPACT_RATIO * self.ntotal):
                self.compact()
        else:
            self.index.remove_ids(faiss.IDSelectorBatch(id_array))

    def reset(self) -> None:
        self.index = self._new()
        self.tombstones.clear()

    def compact(self) -> None:
        """Rebuild without tombstoned vectors (HNSW only needs this)."""
        ids = self.ids()
        keep = ids[~np.isin(ids, np.fromiter(self.tombstones, dtype=np.int64))]
        vectors = self.index.reconstruct_batch(keep) if len(keep) else None
        self.index = self._new()
        self.tombstones.clear()
        if vectors is not None:
            self.index.add_with_ids(vectors, keep)

    def converted(self, kind: str) -> FaissIndex:
        ids = self.ids()
        live = ids[~np.isin(ids, np.fromiter(self.tombstones, dtype=np.int64))]
        other = FaissIndex(self.dimension, kind)
        if len(live):
            other.index.add_with_ids(self.index.reconstruct_batch(live), live)
        return other

    # -- search -----------------------------------------------------------------------
    def search(
        self, query: np.ndarray, k: int, candidates: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of the best ``k``, best first; ids are -1 where fewer exist."""
        query = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        if candidates is not None and self.tombstones:
            candidates = candidates[
                ~np.isin(candidates, np.fromiter(self.tombstones, dtype=np.int64))
            ]
        if candidates is not None and (
            self.kind == "hnsw" and len(candidates) <= EXACT_FILTER_LIMIT
        ):
            return self._exact(query, candidates, k)
        params: Any = None
        selector: Any
        if candidates is not None:
            selector = faiss.IDSelectorBatch(candidates)
        elif self.tombstones:
            dead = np.fromiter(self.tombstones, dtype=np.int64)
            selector = faiss.IDSelectorNot(faiss.IDSelectorBatch(dead))
        else:
            selector = None
        if selector is not None:
            if self.kind == "hnsw":
                params = _search_parameters_hnsw(sel=selector, efSearch=max(HNSW_EF_SEARCH, 4 * k))
            else:
                params = _search_parameters(sel=selector)
        elif self.kind == "hnsw" and k > HNSW_EF_SEARCH:
            params = _search_parameters_hnsw(efSearch=k)
        previous = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            scores, ids = self.index.search(query, k, params=params)
        finally:
            faiss.omp_set_num_threads(previous)
        return scores[0], ids[0]

    def _exact(
        self, query: np.ndarray, candidates: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        if not len(candidates):
            return np.empty(0, np.float32), np.empty(0, np.int64)
        present = candidates[np.isin(candidates, self.ids())]
        if not len(present):
            return np.empty(0, np.float32), np.empty(0, np.int64)
        scores = self.index.reconstruct_batch(present) @ query[0]
        order = np.argsort(-scores, kind="stable")[:k]
        return scores[order], present[order]
