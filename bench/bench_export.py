"""Export figures: compiling a 200-cell notebook into a script (goal < 1 s).

- in process: ``export_source`` on the notebook vs nbconvert's ``PythonExporter`` on the
  same notebook (which leaves ``%%kite`` as ``get_ipython()`` calls), interleaved;
- cold: ``kite-lab export NB -o out.py`` as a new process vs ``jupyter nbconvert --to
  python`` as a new process (what a user or CI actually waits for).

The notebook mixes markdown, plain code, %%kite cells of every kind, line magics and
shell escapes, in the proportions of the tutorials.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import Figure, paired_ratios, parse_args, report, summarize  # noqa: E402

BIN = Path(sys.executable).parent

CELLS = [
    ("markdown", "## Step {i}\n\nSome explanation of step {i}, with `code` and a [link](x)."),
    ("code", "value_{i} = {{'step': {i}, 'items': list(range({i} % 7))}}\ntotal_{i} = "
             "sum(value_{i}['items'])"),
    ("code", "%%kite -o answer_{i} --temperature 0 --max-tokens 64\n"
             "Summarise step {{value_{i}[step]}} ({{total_{i}}}) in one line; keep {{braces}}."),
    ("code", "def helper_{i}(x: int) -> int:\n    \"\"\"Double x.\"\"\"\n    return 2 * x\n\n\n"
             "helper_{i}(total_{i})"),
    ("code", "%%kite -f json -o data_{i} --session s{i}\nGive {{\"step\": {i}}} as JSON."),
    ("code", "%time result_{i} = helper_{i}(3)\n!echo step {i}\n%kite calls"),
    ("code", "%%kite agent:helper -o run_{i}\nWhat happened in step {i}?"),
    ("code", "%%kite -f df --system 'Answer about {{value_{i}}}' -o frame_{i}\nrecords please"),
]


def build_notebook(n_cells: int, folder: Path) -> Path:
    import nbformat

    book = nbformat.v4.new_notebook()
    book.cells.append(nbformat.v4.new_code_cell("%load_ext kite_lab"))
    book.cells.append(nbformat.v4.new_code_cell(
        "from kite_lab import Kite\nfrom kite_lab.notebook import use\n\n"
        "ai = use(Kite())\nhelper = ai.create_agent('helper', 'Be brief.')"))
    makers = {"code": nbformat.v4.new_code_cell, "markdown": nbformat.v4.new_markdown_cell}
    i = 0
    while len(book.cells) < n_cells:
        kind, template = CELLS[i % len(CELLS)]
        book.cells.append(makers[kind](template.format(i=i // len(CELLS))))
        i += 1
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                   "language": "python"}
    path = folder / f"bench_{n_cells}.ipynb"
    nbformat.write(book, path)
    return path


def in_process(path: Path, repeat: int) -> list[Figure]:
    import nbformat
    from nbconvert import PythonExporter

    from kite_lab.notebook.export import export_source, read_notebook

    node = nbformat.read(path, as_version=4)
    export_source(read_notebook(path), label=path.name)  # warm: imports, IPython transformer
    PythonExporter().from_notebook_node(node)

    def ours() -> None:
        export_source(read_notebook(path), label=path.name)

    def theirs() -> None:
        PythonExporter().from_notebook_node(nbformat.read(path, as_version=4))

    ratios, ours_s, base_s = paired_ratios(ours, theirs, number=1, repeat=repeat)
    cells = len(node.cells)
    return [
        summarize(f"export {cells}-cell notebook, in process (read + compile)", ours_s, "s",
                  goal="< 1 s", baseline=f"nbconvert PythonExporter: median "
                  f"{statistics.median(base_s):.3f} s (same notebook, interleaved)"),
        summarize(f"export {cells} cells / nbconvert --to python, in process", ratios, "x",
                  baseline="nbconvert PythonExporter (no %%kite compilation)"),
    ]


def cold(path: Path, repeat: int) -> list[Figure]:
    out_dir = Path(tempfile.mkdtemp(prefix="kite-bench-export-"))
    ours_s, base_s = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([str(BIN / "jupyter"), "nbconvert", "--to", "python", str(path),
                        "--output-dir", str(out_dir), "--log-level", "ERROR"], check=True)
        base_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        subprocess.run([str(BIN / "kite-lab"), "export", str(path), "-o",
                        str(out_dir / "ours.py"), "--force"], check=True,
                       stdout=subprocess.DEVNULL)
        ours_s.append(time.perf_counter() - start)
    ratios = [o / b for o, b in zip(ours_s, base_s, strict=True)]
    return [summarize("kite-lab export (new process) / jupyter nbconvert --to python", ratios,
                      "x", goal="< 1 s absolute",
                      baseline=f"nbconvert: median {statistics.median(base_s):.3f} s; "
                      f"kite-lab export: median {statistics.median(ours_s):.3f} s")]


def main() -> None:
    args = parse_args(__doc__ or "")
    n_cells, repeat, cold_repeat = (20, 3, 1) if args.quick else (200, 15, 5)
    folder = Path(tempfile.mkdtemp(prefix="kite-bench-nb-"))
    path = build_notebook(n_cells, folder)
    report(in_process(path, repeat) + cold(path, cold_repeat))


if __name__ == "__main__":
    main()
