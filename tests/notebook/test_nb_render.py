"""`%%kite -o VAR` in a real IPython shell against the fake server: the stored answer reads
like the Completion ``ai.generate`` returns (issue 13: ``answer.text`` raised AttributeError).
"""

from __future__ import annotations

from typing import Any

import pytest
from IPython.utils.capture import capture_output

from kite_lab.core.types import Usage
from kite_lab.render import KiteText
from kite_lab.testing import Reply


@pytest.mark.parametrize("stream", ["--no-stream", "--stream"])
def test_a_cell_answer_reads_like_a_completion(ip: Any, fake_llm: Any, stream: str) -> None:
    """`%%kite -o answer` in a real IPython shell: answer.text, .usage, .cost_usd (issue 13)."""
    from kite_lab.providers.pricing import cost_usd

    fake_llm.enqueue(Reply(text="Paris", prompt_tokens=7, completion_tokens=3))
    with capture_output():
        ip.run_cell(f"%%kite -o answer {stream}\nCapital of France?")
    ip.run_cell("text, tokens, cost = answer.text, answer.usage.total_tokens, answer.cost_usd\n"
                "where = (answer.provider, answer.model, answer.cached)\n"
                "shout = answer.upper()")
    ns = ip.user_ns
    assert ns["text"] == "Paris" and ns["tokens"] == 10
    assert ns["cost"] == pytest.approx(cost_usd("openai", "gpt-4o-mini", Usage(7, 3)))
    assert ns["cost"] > 0 and ns["where"] == ("openai", "gpt-4o-mini", False)
    assert ns["answer"].latency_s > 0 and type(ns["shout"]) is str and ns["shout"] == "PARIS"


@pytest.mark.parametrize("fmt", ["text", "code", "html"])
def test_every_text_format_stores_a_kite_text(ip: Any, fake_llm: Any, fmt: str) -> None:
    fake_llm.enqueue(Reply(text="```python\nx = 1\n```" if fmt == "code" else "x = 1",
                           prompt_tokens=2, completion_tokens=4))
    with capture_output():
        ip.run_cell(f"%%kite -o value -f {fmt} --no-stream\nx?")
    value = ip.user_ns["value"]
    assert isinstance(value, KiteText) and value.text == value == "x = 1"
    assert value.usage == Usage(2, 4) and value.provider == "openai"
