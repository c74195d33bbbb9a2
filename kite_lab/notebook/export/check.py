"""``kite-lab export --check``: run the script, compare its answers with the notebook's.

Only outputs produced deterministically are compared: temperature 0, a cached answer, or
a notebook that scripts its replies with ``kite_lab.testing`` (the fake server). The
script notes each answer through ``kite_lab.script.record_answer``; the notebook's come
from the ``metadata["kite_lab"]`` outputs the magic wrote.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from kite_lab.notebook.export.build import export_source
from kite_lab.notebook.export.reading import read_notebook
from kite_lab.script import CHECK_FILE_ENV

__all__ = ["check_export", "compare_answers", "stored_answers", "uses_fake_server"]

_FOOTER = re.compile(r"\n\n— [^\n]*\Z")


def check_export(notebook: str | os.PathLike[str], *, main: bool = False,
                 timeout: float = 600.0, out: IO[str] | None = None) -> int:
    """Run the exported script; compare its ``%%kite`` answers with the stored outputs.

    Only outputs produced deterministically are compared: temperature 0, a cached answer,
    or a notebook that scripts its replies with ``kite_lab.testing`` (the fake server).
    Returns 0 when the script ran and nothing differed, 1 otherwise; writes nothing.
    """
    out = out or sys.stdout
    path = Path(notebook)
    node = read_notebook(path)
    script = export_source(node, label=os.fspath(notebook), base_dir=path.resolve().parent,
                           main=main, record=True)
    expected = stored_answers(node)
    with tempfile.TemporaryDirectory(prefix="kite-export-check-") as tmp:
        file = Path(tmp) / f"{path.stem}_check.py"
        file.write_text(script, encoding="utf-8")
        records = Path(tmp) / "answers.jsonl"
        env = {**os.environ, CHECK_FILE_ENV: str(records)}
        try:
            proc = subprocess.run([sys.executable, str(file)], cwd=path.resolve().parent,
                                  env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            print(f"kite-lab export --check: the script ran past {timeout:.0f} s", file=out)
            return 1
        got: dict[int, str] = {}
        if records.exists():
            for line in records.read_text(encoding="utf-8").splitlines():
                item = json.loads(line)
                got[int(item["cell"])] = item["text"]
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        print(f"kite-lab export --check: the script failed (exit {proc.returncode}):\n{tail}",
              file=out)
        return 1
    return compare_answers(expected, got, script.answer_cells, uses_fake_server(node), out)


def stored_answers(node: Any) -> dict[int, tuple[str, dict[str, Any]]]:
    """cell number -> (text/plain without the footer, provenance) of each %%kite output."""
    found = {}
    for number, cell in enumerate(node.get("cells", []), 1):
        for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            info = (output.get("metadata") or {}).get("kite_lab")
            text = (output.get("data") or {}).get("text/plain")
            if info and isinstance(text, str | list):
                text = "".join(text) if isinstance(text, list) else text
                found[number] = (_FOOTER.sub("", text), info)
    return found


def uses_fake_server(node: Any) -> bool:
    """Whether the answers are scripted: the fake server, or a cassette replayed."""
    return any("kite_lab.testing" in source or _REPLAYED.search(source) is not None
               for source in ("".join(c.get("source", "")) for c in node.get("cells", [])
                              if c.get("cell_type") == "code"))


_REPLAYED = re.compile(r"%kite cassette \S+ .*--mode[ =]replay|cassette\(.*mode=.replay")


def compare_answers(expected: Mapping[int, tuple[str, dict[str, Any]]], got: Mapping[int, str],
             kite_cells: list[int], fake: bool, out: IO[str]) -> int:
    differences = compared = 0
    for number in kite_cells:
        if number not in expected:
            print(f"cell {number}: no stored output to compare (execute the notebook first)",
                  file=out)
            continue
        text, info = expected[number]
        params = info.get("params") or {}
        if not (fake or info.get("cached") or params.get("temperature") == 0):
            print(f"cell {number}: skipped (not deterministic: temperature is not 0, not "
                  "cached, no fake server)", file=out)
            continue
        compared += 1
        if number not in got:
            differences += 1
            print(f"cell {number}: DIFFERENT: the script produced no answer", file=out)
        elif got[number].strip() != text.strip():
            differences += 1
            print(f"cell {number}: DIFFERENT\n  notebook: {text.strip()[:300]!r}\n"
                  f"  script:   {got[number].strip()[:300]!r}", file=out)
        else:
            print(f"cell {number}: same", file=out)
    verdict = "no difference" if not differences else f"{differences} difference(s)"
    print(f"kite-lab export --check: {compared} answer(s) compared, {verdict}", file=out)
    return 1 if differences else 0
