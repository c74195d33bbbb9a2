"""The README's env-var table is the settings' own table."""

from __future__ import annotations

import re
from pathlib import Path

from kite_lab.core.config import env_table_markdown

README = Path(__file__).resolve().parents[1] / "README.md"


def test_env_table_matches_the_settings() -> None:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"<!-- env-table:start[^>]*-->\n(.*?)\n<!-- env-table:end -->", text, re.S)
    assert match, "README lost its env-table markers"
    assert match.group(1) == env_table_markdown(), (
        "README env table is stale: regenerate with `python -m kite_lab.core.config`"
    )


def test_readme_starts_with_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    first_block = text.split("```bash", 1)[1].split("```", 1)[0]
    assert first_block.strip().splitlines()[0].startswith("make demo")
    assert first_block.strip().splitlines()[1].startswith("make test")
