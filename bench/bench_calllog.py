"""Benchmarks of the call log and cassettes (issue 16, "Figures").

1. Log write overhead: sequential calls through a real Kite (openai SDK, fake server in
   its own process) with the SQLite call log on (KITE_LOG_PROMPTS=true, the worst case)
   against the same calls with ``KITE_CALL_LOG=none``; the log's writer is flushed at the
   end of every timed block, so its work is counted (goal: <= 2 %). Reported as wall
   clock and as process CPU time (less sensitive to other load on a shared machine).
2. ``calls_df`` over 1,000,000 logged calls (read from logs.db into the typed frame),
   against ``pandas.read_sql_query`` of the same columns as the baseline (goal: < 2 s).
3. Cassette replay of 100 calls against the same 100 calls live on the fake server
   (report).

Every figure is the median of several paired, interleaved repetitions, with min/max and
its baseline measured in the same run. ``--quick`` uses tiny sizes and asserts nothing.
The last line is ``BENCH_JSON [...]``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Figure, fake_server_process, parse_args, report, summarize  # noqa: E402


def _kite(base_url: str, home: Path, log: str) -> Any:
    from kite_lab import Kite

    return Kite(config={"llm_provider": "openai", "openai_api_key": "sk-bench-0123456789",
                        "openai_base_url": base_url + "/v1", "cache_backend": "none",
                        "kite_call_log": log, "kite_log_prompts": True,
                        "kite_home": str(home)}, env_file=None)


def log_overhead(base_url: str, calls: int, repeat: int) -> list[Figure]:
    home = Path(tempfile.mkdtemp(prefix="kite-bench-log-"))
    on, off = _kite(base_url, home, "sqlite"), _kite(base_url, home, "none")
    for ai in (on, off):  # warm: SDK import, connection pool, log schema
        for _ in range(20):
            ai.complete("warm up")
    on.call_log.flush()

    def block(ai: Any) -> tuple[float, float]:
        """(wall seconds, process CPU seconds -- the writer thread's included) per call."""
        started, cpu = time.perf_counter(), time.process_time()
        for i in range(calls):
            ai.complete(f"question {i}: what is the capital of France?")
        if ai.call_log is not None:
            ai.call_log.flush()
        return ((time.perf_counter() - started) / calls, (time.process_time() - cpu) / calls)

    walls, cpus, ours, base = [], [], [], []
    for rep in range(repeat):
        if rep % 2:
            mine, theirs = block(on), block(off)
        else:
            theirs, mine = block(off), block(on)
        ours.append(mine[0])
        base.append(theirs[0])
        walls.append((mine[0] / theirs[0] - 1) * 100)
        cpus.append((mine[1] / theirs[1] - 1) * 100)
    stats = on.call_log.stats()
    on.close()
    off.close()
    extra = {"written": stats["written"], "dropped": stats["dropped"]}
    return [summarize("calllog_write_overhead_pct", walls, "%", goal="<= 2 %",
                      baseline=f"KITE_CALL_LOG=none: median "
                      f"{statistics.median(base) * 1e3:.3f} ms/call; log on: "
                      f"{statistics.median(ours) * 1e3:.3f} ms/call (wall clock)", extra=extra),
            summarize("calllog_cpu_overhead_pct", cpus, "%", goal="<= 2 % (report)",
                      baseline="process CPU per call, log on vs KITE_CALL_LOG=none; the "
                      "writer thread's CPU counted", extra=extra)]


def log_cost_per_call(base_url: str, calls: int, repeat: int) -> list[Figure]:
    """What one call costs the log, in CPU, measured piece by piece in this process: the
    call path's share (queueing) and the writer's (row building, redaction, the batched
    INSERT), against the CPU of the same call with the log off."""
    home = Path(tempfile.mkdtemp(prefix="kite-bench-cost-"))
    on, off = _kite(base_url, home, "sqlite"), _kite(base_url, home, "none")
    for ai in (on, off):
        for _ in range(20):
            ai.complete("warm up")
    log = on.call_log
    log.flush()
    items: list[Any] = []
    submit = log._writer.submit
    log._writer.submit = lambda sink, item: items.append(item) or True  # type: ignore
    prompts = [f"question {i}: what is the capital of France?" for i in range(calls)]
    shares, call_cpu = [], []
    try:
        for _ in range(repeat):
            items.clear()
            cpu = time.process_time()
            for p in prompts:
                off.complete(p)
            call_cpu.append((time.process_time() - cpu) / calls)
            for p in prompts:
                on.complete(p)
            started = time.thread_time()
            for _ in range(calls):
                log.record_call(provider="openai", namespace="openai", request=items[0][4],
                                request_id="x", context={}, completion=items[0][7])
            path_cpu = (time.thread_time() - started) / calls
            started = time.thread_time()
            records = [log.serialize(item) for item in items[calls:2 * calls] or items]
            log.store.write(records)
            writer_cpu = (time.thread_time() - started) / len(records)
            shares.append((path_cpu + writer_cpu) / call_cpu[-1] * 100)
    finally:
        log._writer.submit = submit  # type: ignore
    on.close()
    off.close()
    return [summarize("calllog_cpu_per_call_pct", shares, "%", goal="<= 2 %",
                      baseline=f"CPU of one call with the log off: median "
                      f"{statistics.median(call_cpu) * 1e6:.0f} us (client side)")]


def calls_df_many(rows: int, repeat: int) -> list[Figure]:
    import pandas as pd

    from kite_lab.log import CallRecord, SQLiteCallLog
    from kite_lab.log.frame import LOG_CALL_COLUMNS, calls_frame

    path = Path(tempfile.mkdtemp(prefix="kite-bench-df-")) / "logs.db"
    store = SQLiteCallLog(path)
    models = ["gpt-4o-mini", "gpt-4o", "claude-3-5-haiku", "llama-3.1-8b"]
    now = time.time() - rows
    batch = 50_000
    for start in range(0, rows, batch):
        store.write([CallRecord(ts=now + i, request_id=f"{i:032x}", provider="openai",
                                model=models[i % 4], prompt_tokens=i % 900,
                                completion_tokens=i % 300, cost_usd=None if i % 17 == 0
                                else 1e-6 * (i % 1000), latency_s=0.01 * (i % 100),
                                cached=i % 10 == 0, error="ServerError" if i % 50 == 0 else None)
                     for i in range(start, min(rows, start + batch))])
    conn = store._conn()
    ours, base = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        frame = calls_frame(store)
        ours.append(time.perf_counter() - started)
        started = time.perf_counter()
        columns = ["ts", *(c for c in LOG_CALL_COLUMNS if c != "total_tokens")]
        raw = pd.read_sql_query(f"SELECT {', '.join(columns)} FROM kite_calls "
                                "WHERE kind = 'llm' ORDER BY ts, id", conn)
        base.append(time.perf_counter() - started)
    assert len(frame) == len(raw) == rows
    store.close()
    return [summarize(f"calls_df_{rows}_logged_calls_s", ours, "s", goal="< 2 s at 1,000,000",
                      baseline=f"pandas.read_sql_query, same columns: median "
                      f"{statistics.median(base):.3f} s (untyped, no index)",
                      extra={"ratio_to_read_sql": statistics.median(ours)
                             / statistics.median(base)})]


def replay_vs_live(base_url: str, calls: int, repeat: int) -> list[Figure]:
    home = Path(tempfile.mkdtemp(prefix="kite-bench-replay-"))
    ai = _kite(base_url, home, "none")
    cassette = home / "bench.jsonl"
    prompts = [f"row {i}: label this text as positive or negative" for i in range(calls)]
    for _ in range(5):
        ai.complete("warm up")
    with ai.cassette(cassette, mode="record"):
        for p in prompts:
            ai.complete(p)
    live, replayed = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        for p in prompts:
            ai.complete(p)
        live.append(time.perf_counter() - started)
        started = time.perf_counter()
        with ai.cassette(cassette, mode="replay"):
            for p in prompts:
                ai.complete(p)
        replayed.append(time.perf_counter() - started)
    ai.close()
    ratios = [r / v for r, v in zip(replayed, live, strict=True)]
    return [summarize(f"cassette_replay_{calls}_calls_ratio", ratios, "x live",
                      goal="report (lower is faster)",
                      baseline=f"live on the fake server: median {statistics.median(live):.3f} s;"
                      f" replay: median {statistics.median(replayed):.3f} s")]


def main() -> None:
    args = parse_args(__doc__ or "")
    calls, repeat, rows, df_repeat = (20, 3, 10_000, 2) if args.quick else (200, 9, 1_000_000, 5)
    figures: list[Figure] = []
    with fake_server_process() as base_url:
        figures += log_overhead(base_url, calls, repeat)
        figures += log_cost_per_call(base_url, calls, repeat)
        figures += replay_vs_live(base_url, 100 if not args.quick else 10, repeat)
    figures += calls_df_many(rows, df_repeat)
    report(figures)


if __name__ == "__main__":
    main()
