"""docs/guide_api.md: the deployment guide's Python lines, executed as written."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "guide_api.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def test_guide_snippets_run_in_order(fake_llm, redis_url, redis_prefix, monkeypatch) -> None:
    monkeypatch.setenv("KITE_REDIS_PREFIX", redis_prefix)
    namespace = {"FAKE_OPENAI_URL": fake_llm.openai_base_url, "REDIS_URL": redis_url}
    blocks = _blocks()
    assert len(blocks) >= 7
    for number, block in enumerate(blocks, 1):
        code = compile(block, f"{DOC.name} block {number}", "exec")
        exec(code, namespace)  # noqa: S102 - the doc is ours and is the test subject
    namespace["ai"].close()
    assert len(fake_llm.requests) >= 4  # the cached call and the three agents really ran
