"""``schema=`` for ``ai.map``: one column per field of a pydantic model (or TypedDict...).

A stop-gap until structured output (issue 15) lands: the model is asked for JSON matching
the schema in the system prompt, and the answer is validated with pydantic's TypeAdapter.
``structured_generate`` is the single function to swap for issue 15's native path
(provider JSON mode / tool schemas, a repair round); nothing else in batch depends on how
the answer is obtained, only on ``SchemaSpec.fields`` and the dict it returns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kite_lab.core.errors import InvalidInput, OutputParseError
from kite_lab.core.types import Completion

__all__ = ["SchemaSpec", "StructuredParseError", "structured_generate"]

_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)


class StructuredParseError(OutputParseError):
    """The answer is not JSON of the schema; ``completion`` is the (paid) answer."""

    def __init__(self, message: str, completion: Completion) -> None:
        self.completion = completion
        super().__init__(message)


@dataclass(frozen=True)
class SchemaSpec:
    adapter: Any  # pydantic.TypeAdapter
    fields: tuple[str, ...]
    json_schema: dict[str, Any]

    @classmethod
    def from_schema(cls, schema: Any) -> SchemaSpec:
        from pydantic import TypeAdapter

        try:
            adapter = TypeAdapter(schema)
            json_schema = adapter.json_schema()
        except Exception as exc:
            raise TypeError(
                "schema must be a pydantic model, a TypedDict or a dataclass "
                f"(got {schema!r}: {exc})"
            ) from None
        properties = json_schema.get("properties")
        if json_schema.get("type") != "object" or not isinstance(properties, Mapping):
            raise InvalidInput(
                "schema must describe an object with named fields (one column per field), "
                f"e.g. class Label(BaseModel): label: str; got {schema!r}"
            )
        return cls(adapter, tuple(properties), json_schema)

    def system_prompt(self, system: str | None) -> str:
        instruction = (
            "Answer with one JSON object only (no prose, no code fence) that matches "
            "this JSON schema:\n" + json.dumps(self.json_schema, sort_keys=True)
        )
        return f"{system}\n\n{instruction}" if system else instruction

    def parse(self, text: str) -> dict[str, Any]:
        """The fields as JSON-compatible values; raises OutputParseError."""
        body = text.strip()
        fenced = _FENCE.match(body)
        if fenced:
            body = fenced.group(1)
        try:
            value = self.adapter.validate_json(body)
        except Exception as exc:
            preview = body[:80] + ("..." if len(body) > 80 else "")
            raise OutputParseError(
                f"the answer is not JSON of the schema ({_first_line(exc)}); got {preview!r}"
            ) from None
        dumped = self.adapter.dump_python(value, mode="json")
        return {name: dumped.get(name) for name in self.fields}


def _first_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return "; ".join(lines[:3])[:200]


async def structured_generate(
    host: Any,
    prompt: str,
    spec: SchemaSpec,
    *,
    model: str | None,
    system: str | None,
    params: Mapping[str, Any],
) -> tuple[dict[str, Any], Completion]:
    """One call through the pipeline asking for JSON; the validated fields and the answer."""
    completion: Completion = await host.agenerate(
        prompt, model=model, system=spec.system_prompt(system), **params
    )
    try:
        return spec.parse(completion.text), completion
    except OutputParseError as exc:
        raise StructuredParseError(str(exc), completion) from None
