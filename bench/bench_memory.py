"""Memory figures, each against a raw baseline measured in the same run:

- vector memory search vs raw FAISS on 100k x 384 (goal <= 1.10x), flat (IndexIDMap2
  over flat IP, 1 thread) and HNSW: the same index object, the same queries, interleaved;
  and HNSW's recall@10 against exact search on clustered data;
- embed_batch through kite_lab vs raw fastembed, batch 64, bundled MiniLM (goal <= 1.05x);
- session appends per second and get_history(last 50) latency, SQLite and Postgres,
  vs the same inserts / select written directly against sqlite3 / psycopg with the same
  durability (one committed transaction per message). Postgres is skipped when
  127.0.0.1:5432 does not answer.
"""

from __future__ import annotations

import socket
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
import zlib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import numpy as np  # noqa: E402
from _common import Figure, paired_ratios, parse_args, report, summarize  # noqa: E402

from kite_lab.providers.embeddings import EmbeddingProvider  # noqa: E402

DIM = 384
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


class RandomEmbeddings(EmbeddingProvider):
    """A deterministic random unit vector per text: fills 100k chunks in seconds."""

    name = "random"

    def __init__(self) -> None:
        super().__init__("bench/random", DIM)

    def _embed_array(self, texts: list[str]) -> np.ndarray:
        return np.stack([_vector(zlib.crc32(t.encode())) for t in texts])


class ClusteredEmbeddings(EmbeddingProvider):
    """Text "chunk i" -> a point near one of 100 cluster centres: data with structure,
    where an approximate index can miss true neighbours (random vectors hide that)."""

    name = "clustered"

    def __init__(self, clusters: int = 100) -> None:
        super().__init__("bench/clustered", DIM)
        rng = np.random.default_rng(3)
        centres = rng.standard_normal((clusters, DIM)).astype(np.float32)
        self.centres = centres / np.linalg.norm(centres, axis=1, keepdims=True)

    def point(self, i: int) -> np.ndarray:
        noise = _vector(i + 1_000_003)
        v = self.centres[i % len(self.centres)] + 0.6 * noise
        return (v / np.linalg.norm(v)).astype(np.float32)

    def _embed_array(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.point(int(t.split()[1])) for t in texts])


def _vector(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def alternating(
    ours: Any, baseline: Any, repeat: int
) -> tuple[list[float], list[float], list[float]]:
    """Like paired_ratios with one call each, but which runs first alternates per repetition."""
    ratios, ours_s, base_s = [], [], []
    for rep in range(repeat):
        for which in (1, 0) if rep % 2 else (0, 1):
            t = time.perf_counter()
            (ours if which else baseline)()
            (ours_s if which else base_s).append(time.perf_counter() - t)
        ratios.append(ours_s[-1] / base_s[-1])
    return ratios, ours_s, base_s


# -- vector search ---------------------------------------------------------------------


def vector_search(
    n: int, queries: int, repeat: int, home: Path, kind: str = "flat"
) -> list[Figure]:
    """Per query, alternating which goes first; the baseline searches the very same index
    object with raw FAISS, so the ratio is kite_lab's overhead and nothing else.
    For HNSW also the recall@10 against exact search, on clustered data."""
    import faiss

    from kite_lab.memory.vector import VectorMemory

    embeddings = RandomEmbeddings() if kind == "flat" else ClusteredEmbeddings()
    started = time.perf_counter()
    vm = VectorMemory(home / f"vector-{kind}", embeddings, index_kind=kind)
    vm.add_documents((f"d{i}", f"chunk {i}") for i in range(n))
    fill_s = time.perf_counter() - started
    vm.search_vector(_vector(1), top_k=5)  # loads, warms
    raw = vm._index.index  # type: ignore[union-attr]  # the faiss index itself
    if kind == "flat":
        rng = np.random.default_rng(7)
        qs = rng.standard_normal((queries, DIM)).astype(np.float32)
        qs /= np.linalg.norm(qs, axis=1, keepdims=True)
    else:  # new points from the same clustered distribution
        qs = np.stack([embeddings.point(n + 10 * j) for j in range(queries)])
    faiss.omp_set_num_threads(1)  # the baseline gets the same single-thread setting
    ratios, ours_ms, raw_ms = [], [], []
    for _ in range(repeat):
        ours_t, raw_t = [], []
        for i, q in enumerate(qs):
            for which in (0, 1) if i % 2 else (1, 0):
                t = time.perf_counter()
                if which:
                    vm.search_vector(q, top_k=5)
                else:
                    raw.search(q[None, :], 5)
                (ours_t if which else raw_t).append(time.perf_counter() - t)
        ours_ms.append(statistics.median(ours_t) * 1000)
        raw_ms.append(statistics.median(raw_t) * 1000)
        ratios.append(ours_ms[-1] / raw_ms[-1])
    figures = [
        summarize(
            f"vector_memory.search_vector / raw faiss search, {kind}, {n} x {DIM}, top 5",
            ratios,
            "x",
            goal="<= 1.10x",
            baseline=f"index.search on the same {kind} index object, 1 OpenMP thread, "
            "same queries, alternating per query",
            extra={
                "ours_ms": statistics.median(ours_ms),
                "raw_ms": statistics.median(raw_ms),
                "fill_s": round(fill_s, 2),
            },
        )
    ]
    if kind == "hnsw":
        figures.append(_hnsw_recall(vm, embeddings, n, qs))
    vm.close()
    return figures


def _hnsw_recall(vm: Any, embeddings: ClusteredEmbeddings, n: int, qs: np.ndarray) -> Figure:
    """recall@10 of the HNSW memory against exact inner-product search (numpy)."""
    every = embeddings._embed_array([f"chunk {i}" for i in range(n)])
    recalls = []
    for q in qs:
        exact = set(np.argpartition(-(every @ q), 10)[:10].tolist())
        found = {int(hit.doc_id[1:]) for hit in vm.search_vector(q, top_k=10)}
        recalls.append(len(exact & found) / 10)
    figure = summarize(
        f"HNSW mean recall@10 vs exact search, clustered data, {n} x {DIM}",
        recalls,
        "recall",
        goal="high (>= 0.9 expected)",
        baseline="exact top 10 by numpy inner product over the same vectors; "
        "min/max are single queries",
        extra={"queries_below_0.9": sum(r < 0.9 for r in recalls), "queries": len(recalls)},
    )
    figure.value = statistics.fmean(recalls)  # recall is reported as a mean, not a median
    return figure


# -- embeddings ------------------------------------------------------------------------


def embedding_throughput(n: int, repeat: int, home: Path) -> Figure:
    from fastembed import TextEmbedding

    from kite_lab.core.config import load_settings
    from kite_lab.providers.embeddings import build_embeddings

    provider = build_embeddings(load_settings({"kite_home": home}, env_file=None))
    engine = TextEmbedding(
        "sentence-transformers/all-MiniLM-L6-v2",
        specific_model_path=str(provider.model_path),  # type: ignore[attr-defined]
        local_files_only=True,
    )
    words = "memory agents vector search notebook kite provider cache session tool".split()
    texts = [" ".join(words[(i + j) % len(words)] for j in range(8 + i % 24)) for i in range(n)]
    provider.embed_batch(texts[:64]), list(engine.embed(texts[:64], batch_size=64))  # warm up
    ratios, ours_s, base_s = alternating(
        lambda: provider.embed_batch(texts),
        lambda: [v.tolist() for v in engine.embed(texts, batch_size=64)],
        repeat=repeat,
    )
    return summarize(
        f"embed_batch time / raw fastembed time, {n} texts, batch 64",
        ratios,
        "x",
        goal="<= 1.05x",
        baseline="fastembed TextEmbedding.embed(batch_size=64) on the same model folder",
        extra={
            "ours_texts_per_s": n / statistics.median(ours_s),
            "raw_texts_per_s": n / statistics.median(base_s),
        },
    )


# -- sessions --------------------------------------------------------------------------


def _raw_sqlite(path: Path) -> tuple[Any, Any]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE m (id INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT, role TEXT, "
        "content TEXT, created_at REAL)"
    )
    conn.execute("CREATE INDEX m_s ON m(session_id, id)")

    def append(i: int) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO m(session_id, role, content, created_at) VALUES (?, ?, ?, ?)",
            ("s", "user", f"message {i}", time.time()),
        )
        conn.execute("COMMIT")

    def last50() -> None:
        conn.execute(
            "SELECT * FROM m WHERE session_id = ? ORDER BY id DESC LIMIT 50", ("s",)
        ).fetchall()

    return append, last50


def _raw_postgres(url: str) -> tuple[Any, Any]:
    import psycopg

    conn = psycopg.connect(url)
    conn.execute(
        "CREATE TABLE m (id BIGSERIAL PRIMARY KEY, session_id TEXT, role TEXT, content TEXT, "
        "created_at DOUBLE PRECISION)"
    )
    conn.execute("CREATE INDEX m_s ON m(session_id, id)")
    conn.commit()

    def append(i: int) -> None:
        conn.execute(
            "INSERT INTO m(session_id, role, content, created_at) VALUES (%s, %s, %s, %s)",
            ("s", "user", f"message {i}", time.time()),
        )
        conn.commit()

    def last50() -> None:
        conn.execute(
            "SELECT * FROM m WHERE session_id = %s ORDER BY id DESC LIMIT 50", ("s",)
        ).fetchall()
        conn.commit()

    return append, last50


def sessions(
    backend: str, url: str, raw: tuple[Any, Any], appends: int, repeat: int
) -> list[Figure]:
    from kite_lab.memory.sessions import SessionStore

    store = SessionStore(url)
    raw_append, raw_last50 = raw
    counter = {"ours": 0, "raw": 0}

    def ours() -> None:
        counter["ours"] += 1
        store.add_message("s", "user", f"message {counter['ours']}")

    def baseline() -> None:
        counter["raw"] += 1
        raw_append(counter["raw"])

    ours(), baseline()
    ratios, ours_s, base_s = paired_ratios(ours, baseline, number=appends, repeat=repeat)
    append_fig = summarize(
        f"session append time / raw {backend} insert+commit",
        ratios,
        "x",
        goal="report",
        baseline=f"one INSERT per committed transaction via the raw driver ({backend})",
        extra={
            "ours_appends_per_s": 1 / statistics.median(ours_s),
            "raw_appends_per_s": 1 / statistics.median(base_s),
        },
    )
    ratios, ours_s, base_s = paired_ratios(
        lambda: store.get_history("s", max_messages=50), raw_last50, number=appends, repeat=repeat
    )
    history_fig = summarize(
        f"get_history(last 50) / raw {backend} select",
        ratios,
        "x",
        goal="report",
        baseline=f"SELECT ... ORDER BY id DESC LIMIT 50 via the raw driver ({backend})",
        extra={
            "ours_ms": statistics.median(ours_s) * 1000,
            "raw_ms": statistics.median(base_s) * 1000,
            "messages_in_session": counter["ours"],
        },
    )
    store.close()
    return [append_fig, history_fig]


def _postgres_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def main() -> None:
    args = parse_args(__doc__ or "")
    quick = args.quick
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        for kind in ("flat", "hnsw"):
            figures += vector_search(
                n=2_000 if quick else 100_000,
                queries=20 if quick else 200,
                repeat=2 if quick else 7,
                home=home,
                kind=kind,
            )
        figures.append(
            embedding_throughput(n=64 if quick else 1024, repeat=2 if quick else 5, home=home)
        )
        appends, repeat = (20, 2) if quick else (200, 5)
        sqlite_url = f"sqlite:///{home / 'sessions.db'}"
        figures += sessions("sqlite", sqlite_url, _raw_sqlite(home / "raw.db"), appends, repeat)
        if _postgres_up():
            import psycopg

            names = [f"kite_bench_{uuid.uuid4().hex[:8]}" for _ in range(2)]
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                for name in names:
                    admin.execute(f'CREATE DATABASE "{name}"')
            try:
                ours_url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{names[0]}"
                raw_url = f"postgresql://postgres@127.0.0.1:5432/{names[1]}"
                figures += sessions("postgres", ours_url, _raw_postgres(raw_url), appends, repeat)
            finally:
                with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                    for name in names:
                        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        else:
            print("PostgreSQL not reachable on 127.0.0.1:5432: Postgres figures skipped")
    report(figures)


if __name__ == "__main__":
    main()
