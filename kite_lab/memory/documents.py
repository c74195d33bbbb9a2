"""Load files and folders into vector memory: .txt .md .json .csv .html and .pdf.

Why it behaves this way:
- A folder load must not stop at the first odd file: unsupported, unreadable or empty
  files are skipped and reported, with the reason, in the returned ``LoadSummary``.
- It must not leave a half-saved index either: all writes happen inside one
  ``VectorMemory.batch()``, which saves the index on the way out, also when embedding
  fails or the user interrupts; the documents stored so far are kept and consistent.
- Files are embedded in groups (not one by one) so onnxruntime gets full batches.

Document ids: a file gets ``doc_id`` or its path as given; files in a folder get
``<doc_id or folder path>/<path inside the folder>``. Hidden files and folders
(``.git``) are not visited.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kite_lab.core.errors import InvalidInput

if TYPE_CHECKING:
    from kite_lab.memory.vector import VectorMemory

__all__ = ["SUPPORTED_SUFFIXES", "LoadSummary", "load_document", "read_document"]

ProgressCallback = Callable[[int, int, str], Any]

#: flush a group to the vector memory once it holds this many characters or files
_GROUP_CHARS = 48_000
_GROUP_FILES = 32


@dataclass
class LoadSummary:
    """What ``load_document`` did: doc ids loaded, files skipped with reasons, chunks stored."""

    loaded: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    chunks: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "loaded": list(self.loaded),
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
            "chunks": self.chunks,
        }

    def __str__(self) -> str:
        text = f"loaded {len(self.loaded)} document(s) in {self.chunks} chunk(s)"
        if self.skipped:
            text += f"; skipped {len(self.skipped)}: " + "; ".join(
                f"{p} ({r})" for p, r in self.skipped[:10]
            )
            if len(self.skipped) > 10:
                text += f"; and {len(self.skipped) - 10} more"
        return text


class Unreadable(Exception):
    """A file that is skipped; the message is the reason shown in the summary."""


# -- readers -------------------------------------------------------------------------------


def _decode(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Unreadable(f"not UTF-8 text (byte {exc.start}); convert it to UTF-8") from None


def _read_text(path: Path) -> tuple[str, dict[str, Any]]:
    return _decode(path), {}


def _read_json(path: Path) -> tuple[str, dict[str, Any]]:
    try:
        value = json.loads(_decode(path))
    except json.JSONDecodeError as exc:
        raise Unreadable(f"invalid JSON at line {exc.lineno}: {exc.msg}") from None
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        blocks = ["\n".join(_flatten(item)) for item in value]  # a list of records
        return "\n\n".join(b for b in blocks if b), {"records": len(value)}
    return "\n".join(_flatten(value)), {}


def _flatten(value: Any, prefix: str = "") -> Iterator[str]:
    """``key.sub: value`` lines: searchable text that keeps each value's context."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list):
        if all(not isinstance(v, dict | list) for v in value):
            yield (
                f"{prefix}: {', '.join(str(v) for v in value)}"
                if prefix
                else ", ".join(str(v) for v in value)
            )
        else:
            for index, item in enumerate(value):
                yield from _flatten(item, f"{prefix}[{index}]")
    elif value is not None and str(value).strip():
        yield f"{prefix}: {value}" if prefix else str(value)


def _read_csv(path: Path) -> tuple[str, dict[str, Any]]:
    text = _decode(path)
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise Unreadable(f"invalid CSV: {exc}") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        return "", {}
    header, body = rows[0], rows[1:]
    if not body:  # a single line: no header to pair with
        return ", ".join(header), {"rows": 0}
    lines = []
    for row in body:
        pairs = [f"{name}: {cell}" for name, cell in zip(header, row, strict=False) if cell.strip()]
        lines.append("; ".join(pairs))
    return "\n".join(lines), {"rows": len(body), "columns": header}


class _HTMLText(HTMLParser):
    _SKIP = {"script", "style", "noscript", "template", "svg", "head"}
    _BLOCK = {
        "p", "div", "br", "li", "ul", "ol", "tr", "table", "section", "article", "header",
        "footer", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote", "hr", "title",
    }  # fmt: skip

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: list[str] = []
        self._skipping = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in self._SKIP:
            self._skipping += 1
        if tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in self._SKIP and self._skipping:
            self._skipping -= 1
        if tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)
        elif not self._skipping:
            self.parts.append(data)


def _read_html(path: Path) -> tuple[str, dict[str, Any]]:
    parser = _HTMLText()
    parser.feed(_decode(path))
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.parts).splitlines()]
    text = "\n".join(line for line in lines if line)
    title = " ".join("".join(parser.title).split())
    if title:
        text = f"{title}\n\n{text}" if text else title
    return text, ({"title": title} if title else {})


def _read_pdf(path: Path) -> tuple[str, dict[str, Any]]:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise Unreadable("encrypted PDF: it needs a password; decrypt it first")
        pages = [page.extract_text() or "" for page in reader.pages]
    except Unreadable:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as exc:
        raise Unreadable(f"unreadable PDF: {exc}") from None
    text = "\n\n".join(p.strip() for p in pages if p.strip())
    if not text:
        raise Unreadable("no extractable text (a scanned PDF? run OCR first)")
    return text, {"pages": len(pages)}


_READERS: dict[str, Callable[[Path], tuple[str, dict[str, Any]]]] = {
    ".txt": _read_text,
    ".md": _read_text,
    ".markdown": _read_text,
    ".json": _read_json,
    ".csv": _read_csv,
    ".html": _read_html,
    ".htm": _read_html,
    ".pdf": _read_pdf,
}
SUPPORTED_SUFFIXES = tuple(sorted(_READERS))


def read_document(path: str | os.PathLike[str]) -> tuple[str, dict[str, Any]]:
    """(text, metadata) of one file; ``Unreadable`` with the reason when it cannot be used."""
    file = Path(path)
    reader = _READERS.get(file.suffix.lower())
    if reader is None:
        raise Unreadable(
            f"unsupported file type {file.suffix or '(none)'!r}; supported: "
            + " ".join(SUPPORTED_SUFFIXES)
        )
    try:
        text, extra = reader(file)
    except OSError as exc:
        raise Unreadable(f"cannot read: {exc.strerror or exc}") from None
    if not text.strip():
        raise Unreadable("no text in it")
    return text, {"type": file.suffix.lower().lstrip("."), **extra}


# -- loading ----------------------------------------------------------------------------------


def _files(root: Path) -> list[Path]:
    found: list[Path] = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(Path(folder) / n for n in sorted(names) if not n.startswith("."))
    return found


def load_document(
    vector_memory: VectorMemory,
    path: str | os.PathLike[str],
    doc_id: str | None = None,
    progress: bool | ProgressCallback = True,
) -> LoadSummary:
    """Load a file, or every supported file under a folder, into ``vector_memory``.

    ``progress``: True shows a tqdm bar for folders, a callable gets
    ``(files_done, files_total, path)`` after each file, False shows nothing.
    """
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path must be a str or Path, not {type(path).__name__}")
    if doc_id is not None and (not isinstance(doc_id, str) or not doc_id.strip()):
        raise InvalidInput("doc_id must be a non-blank str (or None to use the path)")
    if not (progress is None or isinstance(progress, bool) or callable(progress)):
        raise TypeError("progress must be True, False or a callable(done, total, path)")
    root = Path(path)
    label = os.fspath(path).replace(os.sep, "/")
    if root.is_dir():
        prefix = (doc_id or label).rstrip("/") or label
        items = [(f, f"{prefix}/{f.relative_to(root).as_posix()}") for f in _files(root)]
        show_bar = progress is True
    elif root.is_file():
        items = [(root, doc_id or label)]
        show_bar = False
    else:
        raise InvalidInput(f"{label} does not exist; pass a file or a folder")

    summary = LoadSummary()
    bar = _bar(len(items)) if show_bar else None
    done = 0
    group: list[dict[str, Any]] = []
    group_chars = 0

    def flush() -> None:
        nonlocal group, group_chars
        if group:
            summary.chunks += vector_memory.add_documents(group)
            summary.loaded.extend(d["doc_id"] for d in group)
            _advance(len(group), group[-1]["metadata"]["source"])
        group, group_chars = [], 0

    def _advance(count: int, where: str) -> None:
        nonlocal done
        done += count
        if bar is not None:
            bar.update(count)
        elif callable(progress):
            progress(done, len(items), where)

    try:
        with vector_memory.batch():
            for file, file_id in items:
                source = str(file).replace(os.sep, "/")
                try:
                    text, extra = read_document(file)
                except Unreadable as exc:
                    summary.skipped.append((source, str(exc)))
                    _advance(1, source)
                    continue
                group.append(
                    {"doc_id": file_id, "text": text, "metadata": {"source": source, **extra}}
                )
                group_chars += len(text)
                if group_chars >= _GROUP_CHARS or len(group) >= _GROUP_FILES:
                    flush()
            flush()
    finally:
        if bar is not None:
            bar.close()
    return summary


def _bar(total: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="file", desc="Loading documents")
