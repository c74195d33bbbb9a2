"""Turn ``ai.map``'s arguments into a plan: the rows, their prompts and their keys.

Why everything is rendered and checked before the first call: a map over 20,000 rows with
a typo in the template, a missing value in row 9,000 or an unknown parameter must fail at
once, with the row and the column named, not after 8,999 paid calls. Rendering every
prompt up front also gives every row its key, which is what resume looks up.

Templates follow the ``%%kite`` interpolation rules (the same ``segments`` function):
``{column}``, ``{column.attr}``, ``{column[key]}``; braces that are not a reference
(``{"a": 1}``, ``\\frac{a}{b}``) stay literal and ``{{name}}`` gives a literal ``{name}``.
One difference, on purpose: a reference whose name is not a column is an error here (in a
cell it would stay literal), because in a template over a table it is always a typo.

A row key is a hash of everything that decides the answer: the values the prompt used,
the rendered prompt, provider, model, system prompt, schema and parameters, plus
``KEY_VERSION``. Another prompt, model or kite_lab key format gives other keys, so a
checkpoint can never hand one run's answers to another.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from kite_lab.core.errors import InvalidInput
from kite_lab.core.types import Usage, canonical_json

# The shared %%kite interpolation rules (one implementation; see the module docstring).
from kite_lab.notebook.interpolate import Reference, segments
from kite_lab.providers.pricing import cost_usd

from .structured import SchemaSpec

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["KEY_VERSION", "MapPlan", "RowTask", "plan_map", "to_frame"]

#: part of every row key: bump it when the key's inputs change meaning
KEY_VERSION = 1
PromptKind = Literal["template", "callable", "agent"]
# Chat-format overhead per message on top of the text (OpenAI documents 3-4 tokens).
_MESSAGE_OVERHEAD = 4


@dataclass(frozen=True)
class RowTask:
    """One distinct call to make: rows with the same key share it (and its answer)."""

    key: str
    prompt: str  # the rendered prompt (an Agent's input)
    worst_case_usd: float | None  # one call's worst case per the price table
    prompt_tokens_max: int  # an upper bound: UTF-8 bytes + message overhead


@dataclass
class MapPlan:
    frame: pd.DataFrame  # the input as a frame (a copy), index and order kept
    row_keys: list[str]  # one per row, in frame order
    tasks: list[RowTask]  # one per distinct key, first occurrence first
    kind: PromptKind
    provider: str | None
    model: str | None
    system: str | None
    params: dict[str, Any] = field(default_factory=dict)
    schema: SchemaSpec | None = None
    agent: Any = None
    max_completion_tokens: int | None = None
    model_arg: str | None = None  # ``model=`` as given (what each call passes)

    @property
    def price_known(self) -> bool:
        return all(t.worst_case_usd is not None for t in self.tasks)


# -- data ------------------------------------------------------------------------------


def to_frame(data: Any) -> pd.DataFrame:
    """A DataFrame (copied), a list of dicts or an iterable of strings (column ``text``)."""
    import pandas as pd

    accepted = "a pandas DataFrame, a list of dicts or an iterable of strings"
    if isinstance(data, pd.DataFrame):
        frame = data.copy()
    elif isinstance(data, pd.Series):
        frame = data.to_frame(name=data.name if isinstance(data.name, str) else "text")
    elif isinstance(data, str | bytes) or isinstance(data, Mapping):
        raise TypeError(
            f"data must be {accepted}, not a single {type(data).__name__} "
            "(wrap one item in a list)"
        )
    elif isinstance(data, Iterable):
        items = list(data)
        for number, item in enumerate(items):
            if not isinstance(item, str | Mapping):
                raise TypeError(
                    f"data must be {accepted}; item {number} is a {type(item).__name__}"
                )
        if len({isinstance(item, str) for item in items}) > 1:
            raise TypeError(f"data must be {accepted}, not a mix of strings and dicts")
        if items and isinstance(items[0], Mapping):
            frame = pd.DataFrame.from_records([dict(item) for item in items])
        else:
            frame = pd.DataFrame({"text": items})
    else:
        raise TypeError(f"data must be {accepted}, not {type(data).__name__}")
    if len(frame) == 0:
        raise InvalidInput("data is empty: there are no rows to map over")
    return frame


# -- prompts -----------------------------------------------------------------------------


def is_agent(prompt: Any) -> bool:
    """An ``Agent`` (duck-typed: batch does not import agents): ``run`` plus ``agent_type``."""
    return callable(getattr(prompt, "run", None)) and hasattr(prompt, "agent_type")


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    import pandas as pd

    try:
        return value is pd.NA or value is pd.NaT or bool(pd.isna(value))
    except (TypeError, ValueError):  # list-like values: not a missing scalar
        return False


def _row_label(frame: pd.DataFrame, position: int) -> str:
    label = frame.index[position]
    return f"row {position}" if label == position else f"row {position} (index {label!r})"


class _Template:
    """A template compiled once: literal pieces and References, checked against columns."""

    def __init__(self, text: str, columns: Sequence[str]) -> None:
        self.pieces = segments(text)
        self.refs = [p for p in self.pieces if isinstance(p, Reference)]
        unknown = sorted({r.name for r in self.refs} - set(columns))
        if unknown:
            raise InvalidInput(
                f"the template names column(s) {', '.join(map(repr, unknown))} that the data "
                f"does not have; columns: {', '.join(map(repr, columns))}. "
                "Write {{name}} for a literal {name}"
            )
        if not self.refs:
            raise InvalidInput(
                "the template uses no column, so every row would send the same prompt; "
                f"reference one of {', '.join(map(repr, columns))} like {{{columns[0]}}}"
            )

    def render(self, row: Mapping[str, Any], where: str) -> tuple[str, dict[str, str]]:
        parts: list[str] = []
        used: dict[str, str] = {}
        for piece in self.pieces:
            if isinstance(piece, str):
                parts.append(piece)
                continue
            if _missing(row[piece.name]):
                raise InvalidInput(
                    f"{where}, column {piece.name!r} is missing (None/NaN); drop or fill "
                    f"those rows first (df.dropna(subset=[{piece.name!r}]) or fillna)"
                )
            try:
                text = str(piece.resolve(row))
            except Exception as exc:
                raise InvalidInput(
                    f"{where}, column {piece.name!r}: cannot look up {{{piece.source}}} "
                    f"({type(exc).__name__}: {exc})"
                ) from None
            used[piece.source] = text
            parts.append(text)
        return "".join(parts), used


def _rows(frame: pd.DataFrame) -> Iterable[dict[str, Any]]:
    names = [str(c) for c in frame.columns]
    for values in frame.itertuples(index=False, name=None):
        yield dict(zip(names, values, strict=True))


def _agent_input(row: Mapping[str, Any]) -> str:
    if len(row) == 1:
        return str(next(iter(row.values())))
    return "\n".join(f"{k}: {v}" for k, v in row.items())


def _render_all(
    frame: pd.DataFrame, prompt: Any, kind: PromptKind
) -> list[tuple[str, dict[str, str]]]:
    columns = [str(c) for c in frame.columns]
    template = _Template(prompt, columns) if kind == "template" else None
    out: list[tuple[str, dict[str, str]]] = []
    for position, row in enumerate(_rows(frame)):
        where = _row_label(frame, position)
        if template is not None:
            text, used = template.render(row, where)
        elif kind == "callable":
            try:
                text = prompt(row)
            except Exception as exc:
                raise InvalidInput(
                    f"{where}: the prompt function raised {type(exc).__name__}: {exc}"
                ) from exc
            if not isinstance(text, str):
                raise TypeError(
                    f"{where}: the prompt function must return str, not {type(text).__name__}"
                )
            used = {}
        else:
            text, used = _agent_input(row), {}
        if not text.strip():
            raise InvalidInput(f"{where}: the prompt is empty; every row needs text to send")
        out.append((text, used))
    return out


# -- the plan ----------------------------------------------------------------------------


def _agent_identity(agent: Any) -> dict[str, Any]:
    tools = getattr(agent, "tools", ()) or ()
    return {
        "name": getattr(agent, "name", None),
        "type": getattr(agent, "agent_type", None),
        "system": getattr(agent, "system_prompt", None),
        "model": getattr(agent, "model", None),
        "tools": sorted(str(getattr(t, "name", t)) for t in tools),
        "max_iterations": getattr(agent, "max_iterations", None),
    }


def row_key(context: Mapping[str, Any], prompt: str, used: Mapping[str, str]) -> str:
    payload = canonical_json({"v": KEY_VERSION, "ctx": context, "prompt": prompt, "used": used})
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]


def prompt_token_bound(text: str, system: str | None) -> int:
    """An upper bound on prompt tokens: byte-level BPE never makes more tokens than bytes."""
    total = len(text.encode("utf-8")) + _MESSAGE_OVERHEAD + 3
    if system:
        total += len(system.encode("utf-8")) + _MESSAGE_OVERHEAD
    return total


def plan_map(
    host: Any,
    data: Any,
    prompt: str | Callable[[dict[str, Any]], str] | Any,
    *,
    model: str | None,
    system: str | None,
    schema: Any,
    params: Mapping[str, Any],
) -> MapPlan:
    """Validate everything and render every row; makes no network call."""
    frame = to_frame(data)
    kind: PromptKind
    if is_agent(prompt):
        kind = "agent"
        given = [n for n, v in (("model", model), ("system", system), ("schema", schema)) if v]
        if given or params:
            names = ", ".join(given + sorted(params))
            raise InvalidInput(
                f"{names} do(es) not apply when prompt is an Agent: configure the agent "
                "instead (ai.create_agent(name, system_prompt, model=...))"
            )
    elif isinstance(prompt, str):
        kind = "template"
    elif callable(prompt):
        kind = "callable"
    else:
        raise TypeError(
            "prompt must be a template str ('Classify: {review}'), a function row -> str "
            f"or an Agent, not {type(prompt).__name__}"
        )
    if system is not None and not isinstance(system, str):
        raise TypeError(f"system must be str, not {type(system).__name__}")
    rendered = _render_all(frame, prompt, kind)
    spec = SchemaSpec.from_schema(schema) if schema is not None else None

    provider = model_name = None
    validated: dict[str, Any] = {}
    max_completion: int | None = None
    if kind == "agent":
        context: dict[str, Any] = {"kind": kind, "agent": _agent_identity(prompt)}
    else:
        full_system = spec.system_prompt(system) if spec else system
        # Resolves the provider and validates params exactly as the call will (no I/O).
        llm, request = host.build_request(
            rendered[0][0], model=model, system=full_system, **params
        )
        provider, model_name, validated = llm.name, request.model, dict(request.params)
        max_completion = validated.get("max_tokens")
        context = {
            "kind": kind,
            "provider": provider,
            "model": model_name,
            "system": system,
            "schema": spec.json_schema if spec else None,
            "params": validated,
        }
    keys: list[str] = []
    tasks: dict[str, RowTask] = {}
    for text, used in rendered:
        key = row_key(context, text, used)
        keys.append(key)
        if key not in tasks:
            bound = prompt_token_bound(text, system)
            tasks[key] = RowTask(key, text, _worst_case(provider, model_name, bound,
                                                        max_completion), bound)
    return MapPlan(
        frame=frame,
        row_keys=keys,
        tasks=list(tasks.values()),
        kind=kind,
        provider=provider,
        model=model_name,
        system=system,
        params=validated,
        schema=spec,
        agent=prompt if kind == "agent" else None,
        max_completion_tokens=max_completion,
        model_arg=model,
    )


def _worst_case(
    provider: str | None, model: str | None, prompt_tokens: int, max_completion: int | None
) -> float | None:
    """One call's worst case per the price table; None when it cannot be known."""
    if provider is None or model is None:  # an Agent: iterations and tools are open-ended
        return None
    free = cost_usd(provider, model, Usage(0, 0))
    if free is None:
        return None  # no price for this model: never a guess
    if max_completion is None:
        zero = cost_usd(provider, model, Usage(prompt_tokens, 10**9))
        return 0.0 if zero == 0.0 else None  # free providers cost 0 whatever they write
    return cost_usd(provider, model, Usage(prompt_tokens, max_completion))
