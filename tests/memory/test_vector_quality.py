"""Search quality with the real bundled model: the right document is in the top 3."""

from __future__ import annotations

from pathlib import Path

import pytest

from kite_lab.memory.vector import VectorMemory
from kite_lab.providers.embeddings import FastEmbedProvider

CORPUS = {
    "photosynthesis": "Plants turn sunlight, water and carbon dioxide into sugar and oxygen "
    "in their leaves, using the green pigment chlorophyll.",
    "volcano": "Magma rises through cracks in the crust and erupts as lava, ash and gas "
    "from a mountain's crater.",
    "inflation": "When prices across the economy keep rising, each unit of currency buys "
    "less; central banks raise interest rates to slow it down.",
    "marathon": "Runners train for months to complete the 42.195 kilometre race, building "
    "endurance with long weekly runs.",
    "sourdough": "Bake the loaf from flour, water, salt and a fermented starter; the wild "
    "yeast makes the dough rise slowly overnight.",
    "python-gil": "CPython's global interpreter lock lets only one thread execute Python "
    "bytecode at a time, so CPU-bound threads do not run in parallel.",
    "vaccines": "An immunization trains the immune system with a harmless piece of a "
    "pathogen so the body can fight the real infection later.",
    "black-holes": "A region of spacetime where gravity is so strong that nothing, not even "
    "light, can escape once it crosses the event horizon.",
    "chess": "Each player moves sixteen pieces on a checkered board, trying to trap the "
    "opponent's king in checkmate.",
    "coffee": "Roasted beans are ground and brewed with hot water to make an energizing "
    "drink containing caffeine.",
    "tides": "The moon's gravitational pull on the oceans makes sea levels rise and fall "
    "twice a day along the coast.",
    "password-security": "Use a long unique passphrase for every account, store it in a "
    "password manager and turn on two-factor authentication.",
}

QUERIES = [
    ("how do leaves make food from light", "photosynthesis"),
    ("why does the price of groceries keep going up", "inflation"),
    ("eruption of molten rock", "volcano"),
    ("training for a long distance running event", "marathon"),
    ("bread made with a natural leaven", "sourdough"),
    ("why python threads don't speed up computation", "python-gil"),
    ("how do shots protect you from disease", "vaccines"),
    ("object whose gravity traps light", "black-holes"),
    ("board game with a king and checkmate", "chess"),
    ("morning caffeinated beverage", "coffee"),
    ("why the sea level changes during the day", "tides"),
    ("how to keep my online accounts safe", "password-security"),
]


@pytest.fixture(scope="module")
def memory(tmp_path_factory: pytest.TempPathFactory, minilm: FastEmbedProvider) -> VectorMemory:
    vm = VectorMemory(Path(tmp_path_factory.mktemp("quality")), minilm)
    vm.add_documents(CORPUS.items())
    return vm


@pytest.mark.parametrize(("query", "expected"), QUERIES)
def test_right_document_in_top_3(memory: VectorMemory, query: str, expected: str) -> None:
    hits = memory.search(query, top_k=3)
    assert expected in [h.doc_id for h in hits], [(h.doc_id, round(h.score, 3)) for h in hits]


def test_scores_are_cosines_best_first(memory: VectorMemory) -> None:
    hits = memory.search("molten lava from a crater", top_k=len(CORPUS))
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert hits[0].doc_id == "volcano" and 0.3 < scores[0] <= 1.0 + 1e-5
    assert -1.0 <= scores[-1] < scores[0] - 0.2
