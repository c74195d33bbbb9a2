"""Validating a structured answer, with one repair round, then a typed error.

Why exactly one round: a model that broke the schema usually fixes it when shown the
validation errors next to its own answer (the instructor/pydantic-ai experience); a model
that fails twice will mostly fail again, and each round costs a call. So: parse; on a
mismatch, send the answer back with the errors and parse the reply; if that fails too,
``OutputValidationError`` with the last text and its errors.

The caller supplies how to ask again (``retry``: extra messages in, a ``Completion`` out),
so the repair call takes the same pipeline (cache, breaker, cost, events) as the first.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from kite_lab.core.errors import OutputValidationError
from kite_lab.core.types import Completion, Message

from .schema import OutputSchema, SchemaMismatch

__all__ = ["Retry", "parse_or_repair", "repair_messages"]

#: asks the model again with this whole conversation
Retry = Callable[[list[Message]], Awaitable[Completion]]


def repair_messages(answer: str, errors: list[str]) -> list[Message]:
    """The failed answer and what is wrong with it, as the next two turns."""
    listed = "\n".join(f"- {e}" for e in errors[:20])
    return [
        Message("assistant", answer),
        Message(
            "user",
            "Your answer does not match the required JSON schema:\n"
            f"{listed}\n"
            "Reply again with only the corrected JSON, no other text.",
        ),
    ]


async def parse_or_repair(
    messages: list[Message], schema: OutputSchema | None, completion: Completion, retry: Retry
) -> Completion:
    """``completion`` (the answer to ``messages``) with ``.parsed`` set, after at most one
    repair round. The repaired Completion reports the usage, cost and latency of both."""
    if schema is None:
        return completion
    try:
        completion.parsed = schema.parse(completion.text)
        return completion
    except SchemaMismatch as first:
        errors = first.errors
    second = await retry([*messages, *repair_messages(completion.text, errors)])
    try:
        second.parsed = schema.parse(second.text)
    except SchemaMismatch as exc:
        raise OutputValidationError(schema.name, second.text, exc.errors) from None
    return combined(completion, second)


def combined(first: Completion, second: Completion) -> Completion:
    """``second``, charged with what ``first`` cost too."""
    second.usage = first.usage + second.usage
    costs = (first.cost_usd, second.cost_usd)
    second.cost_usd = None if None in costs else (first.cost_usd or 0.0) + (second.cost_usd or 0.0)
    second.latency_s = first.latency_s + second.latency_s
    second.cached = first.cached and second.cached
    return second
