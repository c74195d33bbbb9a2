"""Memory: vector memory, sessions, the response cache, document loading and chunking.

- ``vector``: ``VectorMemory``, documents chunked, embedded and searched with FAISS,
  persisted under KITE_HOME (its private parts: ``_vector_store`` the SQLite texts,
  ``_vector_persist`` the index file and locks, ``_vector_input`` argument checks,
  ``_faiss_index`` the FAISS wrapper);
- ``sessions``: ``SessionStore``, conversation history per session id, on SQLite or
  Postgres (``session_engine`` the engines and dialects, ``session_models`` the tables
  and migrations);
- ``cache``: ``ResponseCache``, a TTL cache of JSON values in memory or Redis;
- ``documents`` / ``chunking``: files into documents, documents into chunks.

``_threads`` holds the worker-thread twins and readers-writer lock the stores share.

The names below load their module on first access, so importing this package imports
none of faiss, numpy, sqlmodel or redis.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kite_lab.core.lazy import lazy_exports

if TYPE_CHECKING:
    from kite_lab.memory.cache import ResponseCache, build_cache
    from kite_lab.memory.chunking import ChunkSpan, chunk_spans, chunk_text
    from kite_lab.memory.documents import LoadSummary, load_document, read_document
    from kite_lab.memory.sessions import (
        SessionInfo,
        SessionStore,
        StoredMessage,
        build_session_store,
        check_database,
    )
    from kite_lab.memory.vector import Hit, StoredDocument, VectorMemory, build_vector_memory

__all__ = [
    "ChunkSpan",
    "Hit",
    "LoadSummary",
    "ResponseCache",
    "SessionInfo",
    "SessionStore",
    "StoredDocument",
    "StoredMessage",
    "VectorMemory",
    "build_cache",
    "build_session_store",
    "build_vector_memory",
    "check_database",
    "chunk_spans",
    "chunk_text",
    "load_document",
    "read_document",
]


_HOME = {
    "ChunkSpan": "chunking",
    "Hit": "vector",
    "LoadSummary": "documents",
    "ResponseCache": "cache",
    "SessionInfo": "sessions",
    "SessionStore": "sessions",
    "StoredDocument": "vector",
    "StoredMessage": "sessions",
    "VectorMemory": "vector",
    "build_cache": "cache",
    "build_session_store": "sessions",
    "build_vector_memory": "vector",
    "check_database": "sessions",
    "chunk_spans": "chunking",
    "chunk_text": "chunking",
    "load_document": "documents",
    "read_document": "documents",
}


__getattr__, __dir__ = lazy_exports(__name__, _HOME, __all__)
