"""Vector memory on disk: reload, damage, crash catch-up, model and index changes, processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from memory_fakes import HashEmbeddings

from kite_lab.core.errors import ConfigError, IndexCorrupted
from kite_lab.memory._vector_persist import IndexKeeper
from kite_lab.memory.vector import VectorMemory

HERE = Path(__file__).parent


def _filled(path: Path, n: int = 20, kind: str = "flat") -> VectorMemory:
    vm = VectorMemory(path, HashEmbeddings(), index_kind=kind)
    vm.add_documents(
        (f"d{i}", f"document number{i} about topic{i % 3}", {"i": i}) for i in range(n)
    )
    return vm


def test_reload_round_trip(tmp_path: Path) -> None:
    vm = _filled(tmp_path / "vm")
    vm.delete_document("d3")
    before = [(h.chunk_id, round(h.score, 5)) for h in vm.search("number7 topic1", top_k=5)]
    vm.close()
    assert (tmp_path / "vm" / "index.faiss").is_file()
    again = VectorMemory(tmp_path / "vm", HashEmbeddings())
    assert again.count() == 19
    after = [(h.chunk_id, round(h.score, 5)) for h in again.search("number7 topic1", top_k=5)]
    assert after == before
    assert all(h.doc_id != "d3" for h in again.search("number3", top_k=19))
    assert again.get("d7").metadata == {"i": 7}


def test_corrupted_index_offers_rebuild_and_loses_nothing(tmp_path: Path) -> None:
    _filled(tmp_path / "vm").close()
    index_file = tmp_path / "vm" / "index.faiss"
    index_file.write_bytes(b"\x00garbage" * 100)
    vm = VectorMemory(tmp_path / "vm", HashEmbeddings())
    with pytest.raises(IndexCorrupted, match="rebuild") as info:
        vm.search("number5")
    message = str(info.value)
    assert "20 stored chunks are safe" in message and str(index_file) in message
    with pytest.raises(IndexCorrupted):
        vm.add_document("new", "would need the index")
    assert vm.count() == 20 and vm.get("d5") is not None  # texts still readable
    assert index_file.read_bytes().startswith(b"\x00garbage")  # never overwritten silently
    assert vm.rebuild() == 20
    assert vm.search("number5", top_k=1)[0].doc_id == "d5"
    reopened = VectorMemory(tmp_path / "vm", HashEmbeddings())
    assert reopened.search("number5", top_k=1)[0].doc_id == "d5"


def test_missing_index_file_with_stored_texts_offers_rebuild(tmp_path: Path) -> None:
    _filled(tmp_path / "vm").close()
    (tmp_path / "vm" / "index.faiss").unlink()
    vm = VectorMemory(tmp_path / "vm", HashEmbeddings())
    with pytest.raises(IndexCorrupted, match="is missing"):
        vm.search("number5")
    vm.clear()  # the other way out
    assert vm.count() == 0 and vm.search("number5") == []


def test_crash_between_commit_and_index_save_is_caught_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vm = _filled(tmp_path / "vm")

    def crash(self: IndexKeeper) -> None:
        raise OSError("simulated crash before the index was saved")

    monkeypatch.setattr(IndexKeeper, "_save", crash)
    with pytest.raises(OSError, match="simulated crash"):
        vm.add_document("late", "a late addition about giraffes")
    monkeypatch.undo()
    embeddings = HashEmbeddings()
    again = VectorMemory(tmp_path / "vm", embeddings)
    assert again.search("giraffes", top_k=1)[0].doc_id == "late"
    assert embeddings.calls == 2  # one catch-up batch + the query: not a full rebuild


def test_model_change_requires_rebuild(tmp_path: Path) -> None:
    _filled(tmp_path / "vm").close()
    other = HashEmbeddings(model="test/other-model")
    vm = VectorMemory(tmp_path / "vm", other)
    with pytest.raises(ConfigError, match="rebuild") as info:
        vm.search("number1")
    assert "test/hash-words" in str(info.value) and "test/other-model" in str(info.value)
    assert vm.rebuild() == 20
    assert vm.search("number1", top_k=1)[0].doc_id == "d1"


def test_switching_flat_to_hnsw_converts_the_index(tmp_path: Path) -> None:
    _filled(tmp_path / "vm", kind="flat").close()
    vm = VectorMemory(tmp_path / "vm", HashEmbeddings(), index_kind="hnsw")
    assert vm.search("number4", top_k=1)[0].doc_id == "d4"
    import faiss

    saved = faiss.read_index(str(tmp_path / "vm" / "index.faiss"))
    assert isinstance(faiss.downcast_index(saved.index), faiss.IndexHNSWFlat)


def _child(directory: Path, body: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _script(directory, body)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_another_process_sees_and_extends_the_same_memory(tmp_path: Path) -> None:
    vm = _filled(tmp_path / "vm", n=5)
    assert vm.search("number2", top_k=1)[0].doc_id == "d2"
    out = _child(tmp_path / "vm", 'vm.add_document("child", "written by the child about otters")')
    assert out.returncode == 0, out.stderr
    assert vm.search("otters", top_k=1)[0].doc_id == "child"  # reloaded: the file changed
    vm.add_document("parent", "written by the parent about beavers")
    out = _child(
        tmp_path / "vm",
        'print(vm.count(), [h.doc_id for h in vm.search("otters beavers", top_k=2)])',
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split(" ", 1)[0] == "7"
    assert "child" in out.stdout and "parent" in out.stdout


def test_concurrent_writer_processes_lose_nothing(tmp_path: Path) -> None:
    _filled(tmp_path / "vm", n=1).close()
    body = """
        for i in range(30):
            vm.add_document(f"p{sys.argv[1]}-{i}", f"process {sys.argv[1]} item{i}")
    """
    script_runs = [
        subprocess.Popen(
            [sys.executable, "-c", _script(tmp_path / "vm", body), str(p)],
            stderr=subprocess.PIPE, text=True,
        )
        for p in range(3)
    ]  # fmt: skip
    for proc in script_runs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read() if proc.stderr else ""
    embeddings = HashEmbeddings()
    vm = VectorMemory(tmp_path / "vm", embeddings)
    assert vm.count() == 91
    assert len(vm.search("process item", top_k=100)) == 91
    assert embeddings.calls == 1  # the saved index already held every chunk: no catch-up


def _script(directory: Path, body: str) -> str:
    return textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(HERE)!r})
        from memory_fakes import HashEmbeddings
        from kite_lab.memory.vector import VectorMemory
        vm = VectorMemory({str(directory)!r}, HashEmbeddings())
        """
    ) + textwrap.dedent(body)
