"""``kite-lab demo`` / ``make demo``: the offline tour, on the embedded defaults only.

With the notebook extra installed it executes the quickstart notebook and writes HTML.
Why execute the real notebook: the tutorial is the demo, so the demo can never drift from
what the docs show. It runs in a fresh kernel of *this* Python (the ``python3`` kernel spec
resolves to ``sys.executable``), with the embedded local model, no key and no network, and
fails loudly (exit code 1, the failing cell named) if any cell raises.

Without the extra (no IPython/nbclient) it prints the plain-Python tour instead: the local
SmolLM2 model answers, streams, and the breaker reports its state -- no key, no network.

``execute_notebook`` is shared with the test suite, which runs every tutorial this way.
Importing this module loads neither the notebook machinery nor ``Kite``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kite_lab.kite import Kite

__all__ = [
    "execute_notebook",
    "find_notebooks_dir",
    "notebook_extra_missing",
    "run_demo",
    "run_notebook_tour",
    "run_tour",
    "summarize",
]

#: what the notebook tour imports or starts (the kernel is ipykernel on IPython)
_NOTEBOOK_TOUR_NEEDS = ("IPython", "ipykernel", "nbformat", "nbclient", "nbconvert")
#: variables that would make the demo depend on the machine (keys, remote backends)
_OFFLINE_UNSET = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GROQ_API_KEY", "LLM_MODEL",
                  "REDIS_URL", "POSTGRES_URL")


def find_notebooks_dir() -> Path:
    """``notebooks/`` of the working directory or of the source checkout kite_lab runs from."""
    here = Path.cwd() / "notebooks"
    if (here / "quickstart.ipynb").is_file():
        return here
    checkout = Path(__file__).resolve().parents[1] / "notebooks"  # kite_lab/demo.py
    if (checkout / "quickstart.ipynb").is_file():
        return checkout
    raise FileNotFoundError(
        "notebooks/quickstart.ipynb not found; run from the kite-lab checkout"
    )


@contextmanager
def _environment(changes: Mapping[str, str | None]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in changes}
    try:
        for key, value in changes.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def execute_notebook(
    path: str | os.PathLike[str],
    *,
    timeout: float = 120,
    env: Mapping[str, str | None] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> Any:
    """Run every cell of ``path`` in a fresh kernel; the executed notebook (nbformat).

    Raises nbclient's ``CellExecutionError`` on the first failing cell. ``env`` changes the
    kernel's environment (None removes a variable); ``cwd`` is the kernel's working dir.
    """
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(os.fspath(path), as_version=4)
    workdir = os.fspath(cwd or Path(path).resolve().parent)
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",  # jupyter_client runs "python" as sys.executable
        resources={"metadata": {"path": workdir}},
        allow_errors=False,
    )
    with _environment(dict(env or {})):
        client.execute()
    return notebook


def notebook_extra_missing() -> str | None:
    """The first package of the notebook tour that is not installed, or None if all are."""
    import importlib.util

    for name in _NOTEBOOK_TOUR_NEEDS:
        try:
            if importlib.util.find_spec(name) is None:
                return name
        except (ImportError, ValueError):  # a broken or blocked install counts as missing
            return name
    return None


def run_demo(notebook: str | os.PathLike[str] | None = None,
             out_dir: str | os.PathLike[str] | None = None) -> int:
    """``kite-lab demo``: the notebook tour if the notebook extra is installed, else the
    plain tour; 0 on success."""
    missing = notebook_extra_missing()
    if missing is not None:
        print(f"kite-lab demo: {missing} is not installed (pip install 'kite-lab[notebook]' "
              "for the notebook tour); running the plain-Python tour\n")
        return run_tour()
    if notebook is None:
        try:
            notebook = find_notebooks_dir() / "quickstart.ipynb"
        except FileNotFoundError as exc:
            print(f"kite-lab demo: {exc}; running the plain-Python tour\n")
            return run_tour()
    return run_notebook_tour(notebook, out_dir)


def run_notebook_tour(notebook: str | os.PathLike[str],
                      out_dir: str | os.PathLike[str] | None = None) -> int:
    """Execute ``notebook`` offline, write ``out/<name>.html`` beside it; 0 on success."""
    from nbclient.exceptions import CellExecutionError

    source = Path(notebook)
    target_dir = Path(out_dir) if out_dir else source.parent / "out"
    print(f"kite-lab demo: executing {source} (offline: embedded local model, no key)")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kite-demo-") as home:
        env: dict[str, str | None] = {name: None for name in _OFFLINE_UNSET}
        env.update(LLM_PROVIDER="local", KITE_HOME=home)
        try:
            executed = execute_notebook(source, timeout=300, env=env)
        except CellExecutionError as exc:
            print(f"kite-lab demo: a cell failed\n{_short(str(exc))}", file=sys.stderr)
            return 1
    elapsed = time.perf_counter() - started
    target_dir.mkdir(parents=True, exist_ok=True)
    html_path = target_dir / f"{source.stem}.html"
    _write_html(executed, html_path)
    for line in summarize(executed):
        print(f"  {line}")
    print(f"kite-lab demo: {len(executed.cells)} cells in {elapsed:.1f} s -> {html_path}")
    return 0


def summarize(notebook: Any) -> list[str]:
    """One line per %%kite output: provider/model, and the footer figures."""
    lines = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            info = output.get("metadata", {}).get("kite_lab")
            if not info:
                continue
            text = output.get("data", {}).get("text/plain", "")
            answer = text.split("\n\n— ")[0].strip().replace("\n", " ")
            footer = text.rpartition("— ")[2].strip() if "— " in text else ""
            lines.append(f"{answer[:70]!r}  [{footer}]")
    return lines


def _write_html(notebook: Any, path: Path) -> None:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(notebook)
    path.write_text(body, encoding="utf-8")


def _short(text: str, limit: int = 2000) -> str:
    return text if len(text) <= limit else text[:limit] + "\n..."


def run_tour() -> int:
    """The plain-Python tour: a completion, a stream, the breaker state; 0 on success."""
    from kite_lab.kite import Kite

    ai = Kite(config={"llm_provider": "local"})
    try:
        return _tour(ai)
    finally:
        ai.close()


def _tour(ai: Kite) -> int:
    question = "What is the capital of France? Answer in one sentence."
    print(f"kite_lab tour — provider: {ai.provider_name}, model: {ai.resolve()[1]}\n")

    completion = ai.generate(question, temperature=0, max_tokens=48)
    print(f"Q: {question}\nA: {completion.text.strip()}")
    print(
        f"   [{completion.provider}/{completion.model}: {completion.usage.prompt_tokens} prompt + "
        f"{completion.usage.completion_tokens} completion tokens, {completion.latency_s:.2f} s, "
        f"cost ${completion.cost_usd or 0:.4f}]\n"
    )

    print("Streamed: ", end="", flush=True)
    for piece in ai.stream("Name three primary colors.", temperature=0, max_tokens=48):
        print(piece, end="", flush=True)
    print("\n")
    print(f"circuit breaker: {ai.circuit_breaker.state.value}")
    return 0
