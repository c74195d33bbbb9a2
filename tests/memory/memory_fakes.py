"""Test doubles for the memory tests (a unique module name, importable from subprocesses)."""

from __future__ import annotations

import hashlib
import re

import numpy as np

from kite_lab.providers.embeddings import EmbeddingProvider

__all__ = ["HashEmbeddings"]


class HashEmbeddings(EmbeddingProvider):
    """Bag-of-words vectors: texts sharing words are similar. Fast and deterministic."""

    name = "hash"

    def __init__(self, dimension: int = 384, model: str = "test/hash-words") -> None:
        super().__init__(model, dimension)
        self.calls = 0
        self.fail_after: int | None = None  # raise on the call after this many

    def _embed_array(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("embedding failed (injected)")
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
                sign = 1.0 if digest[4] & 1 else -1.0  # signed hashing: collisions cancel out
                out[row, int.from_bytes(digest[:4], "little") % self.dimension] += sign
            if not out[row].any():
                out[row, 0] = 1.0
        return out
