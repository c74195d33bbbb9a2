"""Split documents into overlapping chunks that fit the embedding model.

Why characters, not tokens: the chunker must not depend on which embedding model is
configured, and all-MiniLM-L6-v2 reads at most 256 tokens (about 1,000 characters of
English), so 800-character chunks are embedded whole. Chunks end at the best natural
break near the limit (paragraph, line, sentence, word) and the next chunk starts
``overlap`` characters earlier, at a word start, so a sentence cut at a boundary is
still whole in one of the two chunks.

Guarantees (tested with hypothesis): every chunk is at most ``size`` characters, chunks
appear in document order, and every non-blank character of the text is in some chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

from kite_lab.core.validate import check_int

__all__ = ["DEFAULT_CHUNK_OVERLAP", "DEFAULT_CHUNK_SIZE", "ChunkSpan", "chunk_spans", "chunk_text"]

DEFAULT_CHUNK_SIZE = 800
DEFAULT_CHUNK_OVERLAP = 120

# Where a chunk may end, best first; a break is only taken in the last part of a window.
_BREAKS = ("\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ")
_MIN_FILL = 0.5  # a chunk ends no earlier than half its size when a break is chosen


@dataclass(frozen=True, slots=True)
class ChunkSpan:
    start: int
    end: int
    text: str


def chunk_spans(
    text: str, size: int = DEFAULT_CHUNK_SIZE, overlap: int = DEFAULT_CHUNK_OVERLAP
) -> list[ChunkSpan]:
    """Chunks of ``text`` with their character offsets (blank chunks are dropped)."""
    check_int(size, "chunk size", error=ValueError)
    if check_int(overlap, "overlap", minimum=0, error=ValueError) >= size:
        raise ValueError(f"overlap must be smaller than the chunk size ({size}), got {overlap!r}")
    spans: list[ChunkSpan] = []
    start, length = _skip_space(text, 0), len(text)
    while start < length:
        end = min(start + size, length)
        if end < length:
            end = _break_before(text, start, end)
        piece = text[start:end]
        stripped = piece.rstrip()
        if stripped:
            spans.append(ChunkSpan(start, start + len(stripped), stripped))
        if end >= length:
            break
        nxt = max(end - overlap, start + 1)
        nxt = _word_start(text, nxt, end)
        start = _skip_space(text, nxt)
    return spans


def chunk_text(
    text: str, size: int = DEFAULT_CHUNK_SIZE, overlap: int = DEFAULT_CHUNK_OVERLAP
) -> list[str]:
    """The chunk texts of ``text`` (see the module docstring)."""
    return [span.text for span in chunk_spans(text, size, overlap)]


def _skip_space(text: str, index: int) -> int:
    while index < len(text) and text[index].isspace():
        index += 1
    return index


def _break_before(text: str, start: int, end: int) -> int:
    """The best end in ``(start, end]``: just after a natural break, if one is late enough."""
    floor = start + max(1, int((end - start) * _MIN_FILL))
    for marker in _BREAKS:
        found = text.rfind(marker, floor, end)
        if found != -1:
            return found + len(marker.rstrip(" ")) if marker.strip() else found + len(marker)
    return end


def _word_start(text: str, index: int, limit: int) -> int:
    """Move ``index`` forward to the start of a word, but not past ``limit``."""
    if index <= 0 or text[index - 1].isspace():
        return index
    probe = index
    while probe < limit and not text[probe - 1].isspace():
        probe += 1
    return probe if probe < limit else index
