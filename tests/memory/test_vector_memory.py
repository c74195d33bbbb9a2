"""Vector memory contract: add, search, filter, replace, delete, evict, prune, events, threads."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from memory_fakes import HashEmbeddings

from kite_lab.core.config import load_settings
from kite_lab.core.errors import ConfigError, InvalidInput
from kite_lab.core.events import EventBus
from kite_lab.memory.vector import Hit, VectorMemory, build_vector_memory

DOCS = [
    ("cats", "Cats are small furry pets that purr and chase mice.", {"topic": "animals", "n": 1}),
    ("dogs", "Dogs are loyal pets that bark and fetch sticks.", {"topic": "animals", "n": 2}),
    (
        "stocks",
        "The stock market rose as investors bought shares.",
        {"topic": "finance", "hot": True},
    ),
    ("rain", "Heavy rain and storms are expected this weekend.", {"topic": "weather", "n": None}),
]


@pytest.fixture(params=["flat", "hnsw"])
def memory(request: pytest.FixtureRequest, tmp_path: Path, hash_embeddings: HashEmbeddings,
           events: EventBus) -> VectorMemory:  # fmt: skip
    vm = VectorMemory(tmp_path / "vm", hash_embeddings, events, index_kind=request.param)
    vm.add_documents(DOCS)
    return vm


def test_add_search_get_delete(memory: VectorMemory) -> None:
    hits = memory.search("purr mice", top_k=2)
    assert isinstance(hits[0], Hit)
    assert (hits[0].doc_id, hits[0].chunk_id) == ("cats", "cats#0")
    assert hits[0].metadata == {"topic": "animals", "n": 1}
    assert hits[0].score > hits[1].score
    assert memory.count() == 4 and len(memory) == 4 and "dogs" in memory
    stored = memory.get("dogs")
    assert stored is not None and stored.text == DOCS[1][1] and stored.chunks == [DOCS[1][1]]
    assert memory.get("nope") is None
    assert memory.delete_document("cats") == 1
    assert memory.delete_document("cats") == 0
    assert all(h.doc_id != "cats" for h in memory.search("purr mice", top_k=10))
    assert memory.list_documents() == ["dogs", "stocks", "rain"]


def test_top_k_bounds(memory: VectorMemory) -> None:
    assert len(memory.search("pets", top_k=1)) == 1
    assert len(memory.search("pets", top_k=50)) == 4


def test_long_document_is_chunked_with_ids(memory: VectorMemory) -> None:
    text = " ".join(f"Paragraph {i} mentions the keyword zebra{i}." for i in range(200))
    ids = memory.add_document("long", text)
    assert len(ids) > 5 and ids[:2] == ["long#0", "long#1"]
    hits = memory.search("zebra150", top_k=3)
    assert any(h.doc_id == "long" and "zebra150" in h.text for h in hits)


def test_readding_a_doc_id_replaces_it(memory: VectorMemory) -> None:
    memory.add_document("cats", "Cats now only talk about quantum physics.", {"topic": "science"})
    assert memory.count() == 4
    assert memory.get("cats").metadata == {"topic": "science"}
    assert memory.search("purr mice", top_k=1)[0].doc_id != "cats"
    assert memory.search("quantum physics", top_k=1)[0].doc_id == "cats"
    # the same id twice in one batch: the later one wins
    memory.add_documents([("twin", "first version"), ("twin", "second version")])
    assert memory.get("twin").text == "second version"
    assert memory.count() == 5


def test_filters(memory: VectorMemory) -> None:
    def ids(**kw: object) -> set[str]:
        return {h.doc_id for h in memory.search("pets market rain", top_k=10, **kw)}

    assert ids(filter={"topic": "animals"}) == {"cats", "dogs"}
    assert ids(filter={"topic": ["finance", "weather"]}) == {"stocks", "rain"}
    assert ids(filter={"topic": {"$in": ["weather"]}}) == {"rain"}
    assert ids(filter={"topic": {"$eq": "finance"}}) == {"stocks"}
    assert ids(filter={"hot": True}) == {"stocks"}
    assert ids(filter={"n": 1}) == {"cats"}  # 1 is not True
    assert ids(filter={"n": None}) == {"rain"}
    assert ids(filter={"topic": "animals", "n": [2, 3]}) == {"dogs"}
    assert ids(filter={"doc_id": ["rain", "cats"]}) == {"rain", "cats"}
    assert ids(filter={"topic": []}) == set()
    assert ids(filter={"missing": "x"}) == set()
    with pytest.raises(TypeError, match="filter on 'topic'"):
        memory.search("x", filter={"topic": object()})
    with pytest.raises(InvalidInput, match="\\$in"):
        memory.search("x", filter={"topic": {"$gt": 1}})
    with pytest.raises(TypeError, match="filter must be a dict"):
        memory.search("x", filter=["topic"])  # type: ignore[arg-type]


def test_bad_input(memory: VectorMemory) -> None:
    with pytest.raises(InvalidInput, match="top_k must be at least 1"):
        memory.search("pets", top_k=0)
    with pytest.raises(TypeError, match="top_k"):
        memory.search("pets", top_k="3")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="query is empty"):
        memory.search("  ")
    with pytest.raises(TypeError, match="query must be a str"):
        memory.search(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="text must be a str"):
        memory.add_document("x", b"bytes")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="text is empty"):
        memory.add_document("x", "")
    with pytest.raises(InvalidInput, match="doc_id is empty"):
        memory.add_document(" ", "text")
    with pytest.raises(TypeError, match="JSON-serializable"):
        memory.add_document("x", "text", {"when": object()})
    with pytest.raises(TypeError, match="tuples"):
        memory.add_documents([("ok", "kept before the bad item"), 42])
    assert memory.get("ok") is not None
    memory.delete_document("ok")
    with pytest.raises(InvalidInput, match="dimensions"):
        memory.search_vector([0.1, 0.2])
    assert memory.count() == 4  # nothing was half-added


def test_events_carry_ids_and_sizes_but_no_text(
    tmp_path: Path, hash_embeddings: HashEmbeddings
) -> None:
    bus = EventBus()
    vm = VectorMemory(tmp_path / "vm", hash_embeddings, bus)
    vm.add_document("secret-doc", "the launch code is swordfish", {"k": "v"})
    vm.search("what is the launch code")
    vm.delete_document("secret-doc")
    names = [e.name for e in bus.history()]
    assert names == ["memory:add", "memory:search", "memory:delete"]
    add, search, delete = bus.history()
    assert add.data["doc_ids"] == ["secret-doc"] and add.data["chunks"] == 1
    assert search.data["top_k"] == 5 and search.data["hits"] == 1
    assert delete.data["chunks"] == 1
    assert "swordfish" not in repr([e.data for e in bus.history()])
    assert "launch" not in repr([e.data for e in bus.history()])


def test_max_chunks_evicts_oldest(tmp_path: Path, hash_embeddings: HashEmbeddings) -> None:
    clock = iter(range(100)).__next__
    bus = EventBus()
    vm = VectorMemory(tmp_path / "vm", hash_embeddings, bus, max_chunks=3, clock=clock)
    for name in ["a", "b", "c", "d", "e"]:
        vm.add_document(name, f"document {name} text")
    assert vm.count() == 3
    assert vm.list_documents() == ["c", "d", "e"]
    assert {h.doc_id for h in vm.search("document text", top_k=10)} == {"c", "d", "e"}
    assert [e.data["reason"] for e in bus.history("memory:delete")] == ["evict", "evict"]


def test_prune_older_than(tmp_path: Path, hash_embeddings: HashEmbeddings) -> None:
    now = [1000.0]
    vm = VectorMemory(tmp_path / "vm", hash_embeddings, clock=lambda: now[0])
    vm.add_document("old", "an old note")
    now[0] = 5000.0
    vm.add_document("new", "a new note")
    assert vm.prune(older_than=timedelta(seconds=3000)) == 1
    assert vm.list_documents() == ["new"]
    assert vm.prune(older_than=10.0) == 0
    now[0] = 5011.0
    assert vm.prune(older_than=10.0) == 1
    assert vm.count() == 0
    with pytest.raises(TypeError, match="older_than"):
        vm.prune(older_than="1 day")  # type: ignore[arg-type]


def test_clear(memory: VectorMemory) -> None:
    assert memory.clear() == 4
    assert memory.count() == 0 and memory.search("pets") == []
    memory.add_document("again", "pets are back")
    assert memory.search("pets")[0].doc_id == "again"


def test_hnsw_deletes_are_excluded_and_compacted(
    tmp_path: Path, hash_embeddings: HashEmbeddings
) -> None:
    vm = VectorMemory(tmp_path / "vm", hash_embeddings, index_kind="hnsw")
    vm.add_documents((f"d{i}", f"word{i} shared") for i in range(300))
    with vm.batch():  # one index save for all the deletes
        for i in range(0, 290):
            vm.delete_document(f"d{i}")
    hits = vm.search("shared", top_k=20)
    assert {h.doc_id for h in hits} == {f"d{i}" for i in range(290, 300)}
    index = vm._index
    assert index is not None and index.live_count() == 10
    assert index.ntotal < 300  # tombstones were compacted away
    filtered = vm.search("shared", top_k=5, filter={"doc_id": ["d0", "d295"]})
    assert [h.doc_id for h in filtered] == ["d295"]


def test_threads_add_and_search_concurrently(
    tmp_path: Path, hash_embeddings: HashEmbeddings
) -> None:
    vm = VectorMemory(tmp_path / "vm", hash_embeddings)
    vm.add_document("seed", "seed document")
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            for i in range(25):
                vm.add_document(f"w{w}-{i}", f"writer {w} item {i} words")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def reader() -> None:
        try:
            for _ in range(50):
                for hit in vm.search("writer item words", top_k=3):
                    assert hit.text
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
    threads += [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert vm.count() == 76
    reopened = VectorMemory(tmp_path / "vm", hash_embeddings)
    assert len(reopened.search("writer 2 item 24", top_k=76)) == 76


async def test_async_forms(tmp_path: Path, hash_embeddings: HashEmbeddings) -> None:
    vm = VectorMemory(tmp_path / "vm", hash_embeddings)
    assert await vm.aadd_document("a", "async text here") == ["a#0"]
    hits = await vm.asearch("async text", top_k=1)
    assert hits[0].doc_id == "a"
    assert await vm.acount() == 1
    assert vm.asearch.__name__ == "asearch"


def test_build_vector_memory_checks_dimension(tmp_path: Path) -> None:
    settings = load_settings(
        {"kite_home": tmp_path / "home", "vector_max_chunks": 10}, env_file=None
    )
    vm = build_vector_memory(settings, HashEmbeddings(384))
    assert vm.directory == (tmp_path / "home" / "vector" / "default").absolute()
    assert vm.max_chunks == 10
    with pytest.raises(ConfigError, match="VECTOR_DIMENSION is 384") as info:
        build_vector_memory(settings, HashEmbeddings(128))
    assert "128" in str(info.value)
