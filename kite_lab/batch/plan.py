"""The plan of one ``ai.map`` run: the data as a frame, each row's prompt and key.

Why everything is decided before the first call: a typo in a template, an empty cell in
the 900th row or a wrong ``concurrency`` must fail at once, naming the row and the
column, not after 899 paid calls. Rendering every prompt up front also gives each row
its key (needed to know which rows a checkpoint already holds) and the dry-run estimate.

A row key is a sha256 of everything that can change the row's answer: the values the
prompt used, the rendered prompt, the model, the system prompt, the schema, the
parameters (or, for an Agent, its name, system prompt, model and tools) and
``KEY_VERSION``. Change any of them and the key changes: a different run, never a mix.
Rows with the same key are asked once and share the answer.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kite_lab.core.errors import InvalidInput
from kite_lab.core.interpolate import Reference, segments
from kite_lab.core.types import canonical_json

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "KEY_VERSION",
    "META_COLUMNS",
    "MapPlan",
    "PromptSource",
    "RowPrompts",
    "render_prompts",
    "schema_fields",
    "schema_identity",
    "to_frame",
]

#: part of every row key: bump it when what a key means changes (old checkpoints: unused)
KEY_VERSION = 1
#: the metadata columns ``ai.map`` adds, in order
META_COLUMNS = ("_error", "_cost_usd", "_total_tokens", "_latency_s", "_cached", "_row_key")
_ACCEPTED = "a pandas DataFrame, a list of dicts, or an iterable of strings (one column 'text')"


# -- data ------------------------------------------------------------------------------


def to_frame(data: Any) -> pd.DataFrame:
    """``data`` as a DataFrame (a copy: the caller's object is never changed)."""
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        frame = data.copy()
    elif isinstance(data, str | bytes | Mapping) or not isinstance(data, Iterable):
        hint = ""
        if isinstance(data, Mapping):
            hint = "; for a dict of columns use pandas.DataFrame(data)"
        elif isinstance(data, str):
            hint = "; for one prompt use ai.complete(text), for many pass [text, ...]"
        raise TypeError(f"data must be {_ACCEPTED}, not {type(data).__name__}{hint}")
    else:
        items = list(data)
        if items and all(isinstance(item, str) for item in items):
            frame = pd.DataFrame({"text": items})
        elif all(isinstance(item, Mapping) for item in items):
            frame = pd.DataFrame.from_records([dict(item) for item in items])
        else:
            kind = str if isinstance(items[0], str) else Mapping
            position, bad = next(
                (i, item) for i, item in enumerate(items) if not isinstance(item, kind)
            )
            raise TypeError(
                f"data[{position}] is a {type(bad).__name__}; data must be {_ACCEPTED}, "
                "all items of one kind"
            )
    if len(frame) == 0:
        raise InvalidInput("data is empty (0 rows); pass at least one row to map over")
    if frame.columns.has_duplicates:
        dupes = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
        raise InvalidInput(f"data has duplicate column names {dupes}; rename them first")
    return frame


# -- prompts ---------------------------------------------------------------------------


PromptSource = str | Callable[[dict[str, Any]], str] | Any  # a template, a callable, an Agent


@dataclass
class RowPrompts:
    """Each row's prompt text and the values it used (for the key), in row order."""

    texts: list[str]
    used: list[Any]
    kind: str  # "template" | "callable" | "agent"
    columns: list[str] = field(default_factory=list)  # the columns a template references


def render_prompts(frame: pd.DataFrame, prompt: Any, *, is_agent: bool) -> RowPrompts:
    """Render ``prompt`` for every row; InvalidInput names the row and the column."""
    if isinstance(prompt, str):
        return _render_template(frame, prompt)
    if is_agent:
        return _render_rows(frame, _agent_input, "agent")
    if callable(prompt):
        return _render_rows(frame, prompt, "callable")
    raise TypeError(
        "prompt must be a template str ('Classify: {review}'), a callable row -> str, "
        f"or an Agent, not {type(prompt).__name__}"
    )


def _render_template(frame: pd.DataFrame, template: str) -> RowPrompts:
    if not template.strip():
        raise InvalidInput("the prompt template is empty; write what to ask for each row")
    pieces = segments(template)
    refs = [p for p in pieces if isinstance(p, Reference)]
    columns = [str(c) for c in frame.columns]
    for ref in refs:
        if ref.name not in frame.columns:
            raise InvalidInput(
                f"the template uses {{{ref.source}}} but the data has no column {ref.name!r}; "
                f"columns: {', '.join(map(repr, columns))} (write {{{{{ref.source}}}}} for "
                "literal braces)"
            )
    names = list(dict.fromkeys(ref.name for ref in refs))
    texts: list[str] = []
    used: list[Any] = []
    index = frame.index
    rows = frame[names].itertuples(index=False, name=None) if names else ((),) * len(frame)
    for position, values in enumerate(rows):
        namespace = dict(zip(names, values, strict=True))
        parts: list[str] = []
        for piece in pieces:
            if isinstance(piece, str):
                parts.append(piece)
                continue
            value = namespace[piece.name]
            if _missing(value):
                raise InvalidInput(
                    f"row {index[position]!r}: column {piece.name!r} is empty (None/NaN); "
                    f"fill it or drop those rows (df.dropna(subset=[{piece.name!r}]))"
                )
            try:
                parts.append(str(piece.resolve(namespace)))
            except Exception as exc:
                raise InvalidInput(
                    f"row {index[position]!r}: {{{piece.source}}} cannot be read from column "
                    f"{piece.name!r} ({type(exc).__name__}: {exc})"
                ) from None
        text = "".join(parts)
        _check_text(text, index[position])
        texts.append(text)
        used.append([_jsonable(v) for v in values])
    return RowPrompts(texts, used, "template", names)


def _render_rows(
    frame: pd.DataFrame, render: Callable[[dict[str, Any]], Any], kind: str
) -> RowPrompts:
    columns = [str(c) for c in frame.columns]
    texts: list[str] = []
    used: list[Any] = []
    index = frame.index
    for position, values in enumerate(frame.itertuples(index=False, name=None)):
        row = dict(zip(columns, values, strict=True))
        try:
            text = render(row)
        except Exception as exc:
            raise InvalidInput(
                f"row {index[position]!r}: the prompt callable raised {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(text, str):
            raise TypeError(
                f"row {index[position]!r}: the prompt callable returned "
                f"{type(text).__name__}; it must return str"
            )
        _check_text(text, index[position])
        texts.append(text)
        used.append({k: _jsonable(v) for k, v in row.items()})
    return RowPrompts(texts, used, kind)


def _agent_input(row: dict[str, Any]) -> str:
    """An Agent's input for a row: the value of a one-column row, else ``column: value``
    lines (empty cells left out)."""
    if len(row) == 1:
        (value,) = row.values()
        return "" if _missing(value) else str(value)
    return "\n".join(f"{k}: {v}" for k, v in row.items() if not _missing(v))


def _check_text(text: str, label: Any) -> None:
    if not text.strip():
        raise InvalidInput(f"row {label!r}: the prompt is empty; fill the row or drop it")


def _missing(value: Any) -> bool:
    """None, NaN, pd.NA, NaT: an empty cell."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    if type(value).__module__.split(".")[0] in ("numpy", "pandas"):
        import pandas as pd

        try:
            return bool(pd.isna(value))
        except (TypeError, ValueError):  # an array-like cell
            return False
    return False


def _jsonable(value: Any) -> Any:
    """A row value as plain JSON (numpy scalars, timestamps, NaN), for the key."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if _missing(value):
        return None
    if isinstance(value, float):
        return value
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item) and type(value).__module__ == "numpy":
        try:
            return _jsonable(item())
        except ValueError:  # an array of several values
            pass
    if isinstance(value, list | tuple) or type(value).__name__ == "ndarray":
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    iso = getattr(value, "isoformat", None)
    if callable(iso):
        return iso()
    return str(value)


# -- schema ----------------------------------------------------------------------------


def schema_fields(schema: Any) -> list[str] | None:
    """The output columns of ``schema=``: a pydantic model's fields, a TypedDict's keys, a
    JSON schema's properties (in order); None when answers are not objects (``list[...]``:
    one output column holds the parsed value)."""
    fields = getattr(schema, "model_fields", None)
    if isinstance(fields, Mapping):
        return [str(name) for name in fields]
    if isinstance(schema, type) and hasattr(schema, "__total__"):  # a TypedDict
        return [str(name) for name in getattr(schema, "__annotations__", {})]
    if isinstance(schema, Mapping):
        properties = schema.get("properties")
        if schema.get("type", "object") == "object" and isinstance(properties, Mapping):
            return [str(name) for name in properties]
    return None


def schema_identity(schema: Any) -> Any:
    """What of ``schema`` goes into the row key: its JSON schema."""
    if schema is None or isinstance(schema, Mapping):
        return schema
    try:
        from pydantic import TypeAdapter

        return TypeAdapter(schema).json_schema()
    except Exception:  # not a type pydantic knows: build_request has said so already
        return repr(schema)


# -- the plan --------------------------------------------------------------------------


@dataclass
class MapPlan:
    """A validated ``ai.map`` run: the frame, each row's prompt and key, the jobs."""

    frame: pd.DataFrame
    prompts: RowPrompts
    keys: list[str]
    #: unique keys in first-row order, each with the position of its first row
    jobs: dict[str, int]
    identity: dict[str, Any]

    @classmethod
    def build(cls, frame: pd.DataFrame, prompts: RowPrompts, identity: dict[str, Any]) -> MapPlan:
        base = hashlib.sha256(
            canonical_json({"v": KEY_VERSION, **identity}).encode("utf-8")
        ).digest()
        keys: list[str] = []
        jobs: dict[str, int] = {}
        for position, (text, used) in enumerate(zip(prompts.texts, prompts.used, strict=True)):
            digest = hashlib.sha256(base)
            digest.update(canonical_json([used, text]).encode("utf-8"))
            key = digest.hexdigest()
            keys.append(key)
            jobs.setdefault(key, position)
        return cls(frame, prompts, keys, jobs, identity)

    def prompt_of(self, key: str) -> str:
        return self.prompts.texts[self.jobs[key]]
