"""load_document: every supported type, folders, skips with reasons, progress, crash safety."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from memory_fakes import HashEmbeddings

from kite_lab.core.errors import InvalidInput
from kite_lab.memory.documents import LoadSummary, load_document, read_document
from kite_lab.memory.vector import VectorMemory


def make_pdf(text_lines: list[str]) -> bytes:
    """A minimal valid one-page PDF showing ``text_lines`` in Helvetica."""
    ops = ["BT", "/F1 12 Tf", "72 720 Td", "14 TL"]
    for line in text_lines:
        escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        ops.append(f"({escaped}) Tj T*")
    ops.append("ET")
    stream = "\n".join(ops).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / "notes.txt").write_text("Plain text about aardvarks.", encoding="utf-8")
    (root / "guide.md").write_text("# Guide\n\nMarkdown about badgers.", encoding="utf-8")
    (root / "data.json").write_text(
        json.dumps([{"name": "camel", "habitat": "desert"}, {"name": "dingo", "tags": ["wild"]}]),
        encoding="utf-8",
    )
    (root / "sub" / "table.csv").write_text(
        "animal,sound\nelephant,trumpet\nfrog,croak\n", encoding="utf-8"
    )
    (root / "sub" / "page.html").write_text(
        "<html><head><title>Giraffe facts</title><style>p{color:red}</style></head>"
        "<body><p>Giraffes have long necks.</p><script>var hidden = 1;</script></body></html>",
        encoding="utf-8",
    )
    (root / "sub" / "deeper" / "report.pdf").write_bytes(make_pdf(["Hippos live in rivers."]))
    (root / "sub" / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (root / "broken.json").write_text("{not json", encoding="utf-8")
    (root / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (root / "empty.md").write_text("   \n", encoding="utf-8")
    (root / "bad.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (root / ".git" / "config").write_text("hidden", encoding="utf-8")
    (root / ".hidden.txt").write_text("hidden", encoding="utf-8")
    return root


@pytest.fixture
def memory(tmp_path: Path) -> VectorMemory:
    return VectorMemory(tmp_path / "vm", HashEmbeddings())


def test_folder_load_reports_loaded_and_skipped(corpus: Path, memory: VectorMemory) -> None:
    seen: list[tuple[int, int]] = []
    summary = load_document(
        memory, corpus, progress=lambda done, total, path: seen.append((done, total))
    )
    assert isinstance(summary, LoadSummary)
    prefix = str(corpus)
    assert sorted(summary.loaded) == sorted(
        f"{prefix}/{name}"
        for name in [
            "data.json", "guide.md", "notes.txt", "sub/page.html", "sub/table.csv",
            "sub/deeper/report.pdf",
        ]
    )  # fmt: skip
    reasons = {Path(p).name: r for p, r in summary.skipped}
    assert set(reasons) == {"image.png", "broken.json", "latin1.txt", "empty.md", "bad.pdf"}
    assert "unsupported file type '.png'" in reasons["image.png"]
    assert "invalid JSON" in reasons["broken.json"]
    assert "not UTF-8" in reasons["latin1.txt"]
    assert "no text" in reasons["empty.md"]
    assert "PDF" in reasons["bad.pdf"]
    assert summary.chunks == memory.count() == 6
    assert seen[-1] == (11, 11)  # every visible file counted, hidden ones never visited
    assert "skipped 5" in str(summary)
    for query, name in [
        ("aardvarks", "notes.txt"), ("badgers", "guide.md"), ("camel desert", "data.json"),
        ("elephant trumpet", "table.csv"), ("giraffes necks", "page.html"),
        ("hippos rivers", "report.pdf"),
    ]:  # fmt: skip
        hit = memory.search(query, top_k=1)[0]
        assert hit.doc_id.endswith(name), (query, hit.doc_id)
        assert hit.metadata["source"].endswith(name)


def test_extracted_text_and_metadata(corpus: Path) -> None:
    html, meta = read_document(corpus / "sub" / "page.html")
    assert html.startswith("Giraffe facts") and "long necks" in html
    assert "hidden" not in html and "color" not in html and meta["title"] == "Giraffe facts"
    csv_text, meta = read_document(corpus / "sub" / "table.csv")
    assert "animal: elephant; sound: trumpet" in csv_text and meta["rows"] == 2
    json_text, meta = read_document(corpus / "data.json")
    assert "name: camel" in json_text and "tags: wild" in json_text and meta["records"] == 2
    pdf_text, meta = read_document(corpus / "sub" / "deeper" / "report.pdf")
    assert "Hippos live in rivers." in pdf_text and meta == {"type": "pdf", "pages": 1}


def test_single_file_and_doc_id(corpus: Path, memory: VectorMemory) -> None:
    summary = load_document(memory, corpus / "notes.txt", doc_id="my-notes")
    assert summary.loaded == ["my-notes"] and summary.skipped == []
    assert memory.get("my-notes").metadata["type"] == "txt"
    again = load_document(memory, corpus / "notes.txt", doc_id="my-notes")  # replaces
    assert again.chunks == 1 and memory.count() == 1
    unsupported = load_document(memory, corpus / "sub" / "image.png")
    assert unsupported.loaded == [] and len(unsupported.skipped) == 1
    folder = load_document(memory, corpus / "sub", doc_id="kb", progress=False)
    assert "kb/table.csv" in folder.loaded and "kb/deeper/report.pdf" in folder.loaded


def test_bad_arguments(memory: VectorMemory, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="does not exist"):
        load_document(memory, tmp_path / "nope")
    with pytest.raises(TypeError, match="path must be"):
        load_document(memory, 42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="progress"):
        load_document(memory, tmp_path, progress="yes")  # type: ignore[arg-type]


def test_tqdm_bar_for_folders(corpus: Path, memory: VectorMemory, capsys) -> None:
    load_document(memory, corpus)
    assert "Loading documents" in capsys.readouterr().err


def test_failure_halfway_keeps_a_saved_consistent_index(tmp_path: Path) -> None:
    root = tmp_path / "many"
    root.mkdir()
    for i in range(100):
        (root / f"f{i:03}.txt").write_text(f"file {i} talks about topic{i} " * 40, encoding="utf-8")
    embeddings = HashEmbeddings()
    embeddings.fail_after = 2  # the third embedding batch fails
    memory = VectorMemory(tmp_path / "vm", embeddings)
    with pytest.raises(RuntimeError, match="injected"):
        load_document(memory, root, progress=False)
    stored = memory.count()
    assert 0 < memory.count_documents() < 100
    fresh = HashEmbeddings()
    reopened = VectorMemory(tmp_path / "vm", fresh)
    assert reopened.count() == stored
    assert len(reopened.search("file talks", top_k=1000)) == stored
    assert fresh.calls == 1  # the saved index held every stored chunk: nothing to catch up
