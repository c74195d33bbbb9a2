"""Metrics across uvicorn workers: PROMETHEUS_MULTIPROC_DIR, aggregation, worker memory.

Why: with several workers each process has its own counters, and a scrape reaches one
of them. With ``PROMETHEUS_MULTIPROC_DIR`` set *before* prometheus_client is imported
(``kite-lab serve`` does it, and wipes the directory at start so a restart does not add
old counts), values live in per-process mmap files and ``render`` aggregates every
worker's files. A worker that exits is marked dead so its live gauges (in-flight
requests) stop counting. ``kite_process_resident_memory_bytes`` sums the resident
memory of every worker whose files are present, whichever worker answers the scrape.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = [
    "MemoryCollector",
    "mark_process_dead",
    "multiprocess_enabled",
    "render",
    "wipe_multiprocess_dir",
]


def multiprocess_enabled() -> bool:
    """Whether prometheus_client stores values in PROMETHEUS_MULTIPROC_DIR files."""
    from prometheus_client import values

    return bool(getattr(values.ValueClass, "_multiprocess", False))


def wipe_multiprocess_dir(path: str | os.PathLike[str]) -> int:
    """Create ``path`` if needed and delete the ``*.db`` files of earlier runs."""
    os.makedirs(path, exist_ok=True)
    removed = 0
    for name in os.listdir(path):
        if name.endswith(".db"):
            os.unlink(os.path.join(path, name))
            removed += 1
    return removed


def render(registry: CollectorRegistry, multiprocess: bool) -> tuple[bytes, str]:
    """The exposition text: ``registry`` alone, or every worker's files when multiprocess."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    if not multiprocess:
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import multiprocess as prometheus_multiprocess

    merged = CollectorRegistry()
    collector: Any = prometheus_multiprocess.MultiProcessCollector  # untyped there
    collector(merged)
    merged.register(MemoryCollector())
    return generate_latest(merged), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int | None = None) -> None:
    """Drop a worker's live gauges (in-flight requests) from the multiprocess files."""
    from prometheus_client import multiprocess

    mark: Any = multiprocess.mark_process_dead  # untyped in prometheus_client
    mark(pid or os.getpid())


class MemoryCollector:
    """``kite_process_resident_memory_bytes``: resident memory of every live worker, summed.

    In multiprocess mode the worker pids come from the metric file names, so the figure
    covers all workers whichever one answers the scrape.
    """

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily(
            "kite_process_resident_memory_bytes",
            "resident memory of the service's worker processes",
        )
        family.add_metric([], float(sum(_rss_bytes(pid) for pid in _worker_pids())))
        yield family

    def describe(self) -> list[Any]:
        return []


def _worker_pids() -> set[int]:
    pids = {os.getpid()}
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory and multiprocess_enabled():
        try:
            names = os.listdir(directory)
        except OSError:
            names = []
        for name in names:
            stem = name.rsplit(".", 1)[0]
            tail = stem.rsplit("_", 1)[-1]
            if tail.isdigit():
                pids.add(int(tail))
    return pids


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        if pid != os.getpid():
            return 0
        import resource  # not Linux: peak RSS is the best figure available

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
