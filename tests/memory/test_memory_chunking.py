"""Chunking: size bound, order, coverage and overlap, checked on generated text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kite_lab.memory.chunking import chunk_spans, chunk_text

words = st.text(alphabet="abcdefghij KLM.,\n", min_size=0, max_size=3000)


@settings(max_examples=200, deadline=None)
@given(text=words, size=st.integers(10, 400), data=st.data())
def test_chunks_are_bounded_ordered_and_cover_the_text(text: str, size: int, data) -> None:
    overlap = data.draw(st.integers(0, size - 1))
    spans = chunk_spans(text, size, overlap)
    covered = [False] * len(text)
    last_start = -1
    for span in spans:
        assert 0 < len(span.text) <= size
        assert text[span.start : span.end] == span.text
        assert span.start > last_start  # always moves forward
        last_start = span.start
        for i in range(span.start, span.end):
            covered[i] = True
    for i, ch in enumerate(text):
        if not ch.isspace():
            assert covered[i], f"character {i} ({ch!r}) is in no chunk"


def test_short_text_is_one_chunk_and_blank_text_none() -> None:
    assert chunk_text("  hello world  ") == ["hello world"]
    assert chunk_text(" \n\t ") == []


def test_chunks_end_at_sentence_breaks_and_overlap() -> None:
    sentences = [f"Sentence number {i} talks about topic {i}." for i in range(40)]
    text = " ".join(sentences)
    chunks = chunk_text(text, size=200, overlap=50)
    assert len(chunks) > 5
    for chunk in chunks[:-1]:
        assert chunk.endswith("."), chunk  # cut after a sentence, not mid-word
    for left, right in zip(chunks, chunks[1:], strict=False):
        assert left[-30:].split()[-1] in right or right.split()[0] in left  # they overlap


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError):
        chunk_text("x", size=0)
    with pytest.raises(ValueError):
        chunk_text("x", size=10, overlap=10)
