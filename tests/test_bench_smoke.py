"""Each benchmark script runs (on tiny sizes) and reports its figures; no timing asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
SCRIPTS = sorted(BENCH.glob("bench_*.py"))


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_bench_script_runs_quick(script: Path, tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, str(script), "--quick"],
        capture_output=True, text=True, timeout=240, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH_JSON ")]
    assert lines, proc.stdout[-2000:]
    figures = json.loads(lines[-1].removeprefix("BENCH_JSON "))
    assert figures and all({"name", "value", "unit"} <= set(f) for f in figures)
