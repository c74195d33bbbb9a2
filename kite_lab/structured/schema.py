"""What ``schema=`` accepts, normalised once into an ``OutputSchema``.

Why one normalised form: every provider asks for structured output its own way (OpenAI's
``response_format``, Anthropic's forced tool, Ollama's ``format``, llama.cpp's grammar),
the cache key must include the schema, and the answer is validated the same way whatever
produced it. ``OutputSchema`` carries all three: the JSON schema sent to the provider
(always an object at the top, as OpenAI and Anthropic require; a list or scalar is wrapped
in ``{"items": ...}``), whether OpenAI's strict mode can take it, and the validator.

Accepted: a pydantic model class, a ``TypedDict``, ``list[...]`` of either, or a
JSON-schema dict. Pydantic validates the first three (a ``TypeAdapter`` built once per
type); a JSON-schema dict is validated with ``jsonschema``. A validated answer costs one
``json.loads`` plus one validation: tens of microseconds for a ten-field model.
"""

from __future__ import annotations

import functools
import json
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kite_lab.core.errors import InvalidInput
from kite_lab.core.types import canonical_json

__all__ = [
    "ACCEPTED_KINDS",
    "OutputSchema",
    "SchemaMismatch",
    "normalize_schema",
    "schema_for_call",
]

ACCEPTED_KINDS = (
    "a pydantic model class, a TypedDict, list[Model] / list[TypedDict], "
    "or a JSON-schema dict"
)
#: the property a non-object answer is wrapped in (``list[Model]`` -> ``{"items": [...]}``)
WRAP_KEY = "items"
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]+")
_FENCE = re.compile(r"^\s*```[A-Za-z0-9_-]*\s*\n?(.*?)\n?\s*```\s*$", re.S)


class SchemaMismatch(ValueError):
    """An answer is not JSON or does not fit the schema; ``errors`` says where."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("; ".join(errors))


@dataclass(frozen=True, eq=False)
class OutputSchema:
    """A schema ready for providers (``json_schema``) and for validating answers."""

    #: a name providers accept for the schema/tool: 1-64 of ``[A-Za-z0-9_-]``
    name: str
    #: the JSON schema providers are asked for; always ``"type": "object"`` at the top
    json_schema: dict[str, Any]
    #: OpenAI's strict variant (every property required, no extra ones), None if impossible
    strict_schema: dict[str, Any] | None
    #: the answer arrives as ``{"items": value}`` and is unwrapped before validation
    wrapped: bool
    #: what the user passed (a class, a list[...] alias or the dict)
    source: Any = field(repr=False)
    _validate: Any = field(repr=False)

    def fingerprint(self) -> dict[str, Any]:
        """What decides the answer: part of the response-cache key."""
        return {"name": self.name, "schema": self.json_schema}

    @functools.cached_property
    def schema_json(self) -> str:
        """The schema as JSON text, fields in their declared order (a grammar keeps it)."""
        return json.dumps(self.json_schema, ensure_ascii=False)

    def instruction(self) -> str:
        """A prompt line for providers that are not told the schema natively."""
        return (
            "Reply with only a JSON value that matches this JSON schema, with no other text:\n"
            + self.schema_json
        )

    def parse(self, text: str) -> Any:
        """The validated value of ``text``; ``SchemaMismatch`` lists what is wrong."""
        data = _load_json(text)
        if self.wrapped:
            if not isinstance(data, dict) or WRAP_KEY not in data:
                raise SchemaMismatch(
                    [f"expected a JSON object with the key {WRAP_KEY!r} holding the answer"]
                )
            data = data[WRAP_KEY]
        return self._validate(data)


def normalize_schema(schema: Any) -> OutputSchema:
    """An ``OutputSchema`` for ``schema``; TypeError names the accepted kinds."""
    if isinstance(schema, OutputSchema):
        return schema
    if isinstance(schema, Mapping):
        return _from_dict(canonical_json(schema))
    if _is_model_instance(schema):
        name = type(schema).__name__
        raise TypeError(
            f"schema= takes the class, not an instance: use {name}, not {name}(...) "
            f"(accepted: {ACCEPTED_KINDS})"
        )
    try:
        return _from_type(schema)
    except TypeError:
        raise
    except _Unhashable:
        pass
    raise TypeError(f"schema= takes {ACCEPTED_KINDS}; got {_describe(schema)}")


def schema_for_call(schema: Any, *, tools: bool, params: Mapping[str, Any]) -> OutputSchema:
    """``normalize_schema`` plus the checks of one call's other arguments."""
    if tools:
        raise InvalidInput(
            "schema= and tools= cannot be combined in one call: run the tools with an agent, "
            "then ai.extract(answer, schema)"
        )
    if "response_format" in params:
        raise InvalidInput("pass schema= or response_format=, not both")
    return normalize_schema(schema)


class _Unhashable(Exception):
    pass


def _is_model_instance(value: Any) -> bool:
    return any(c.__name__ == "BaseModel" for c in type(value).__mro__[1:]) and hasattr(
        value, "model_dump"
    )


def _describe(value: Any) -> str:
    if isinstance(value, type):
        return f"the class {value.__qualname__}"
    return f"{type(value).__name__} {value!r:.60}"


# -- typed schemas (pydantic does the work) ----------------------------------------------


def _from_type(schema: Any) -> OutputSchema:
    try:
        hash(schema)
    except TypeError:
        raise _Unhashable() from None
    return _typed_schema(schema)


@functools.lru_cache(maxsize=256)
def _typed_schema(schema: Any) -> OutputSchema:
    from pydantic import BaseModel, TypeAdapter

    item = schema
    is_list = typing.get_origin(schema) is list
    if is_list:
        args = typing.get_args(schema)
        item = args[0] if len(args) == 1 else None
    is_model = isinstance(item, type) and issubclass(item, BaseModel)
    if not (is_model or (item is not None and typing.is_typeddict(item))):
        raise TypeError(f"schema= takes {ACCEPTED_KINDS}; got {_describe(schema)}")
    target = schema
    if not is_model:  # pydantic needs typing_extensions.TypedDict before Python 3.12
        converted = _pydantic_typeddict(item)
        target = list[converted] if is_list else converted  # type: ignore[valid-type]
    try:
        adapter: Any = TypeAdapter(target)
        inner = adapter.json_schema()
    except Exception as exc:  # a field type pydantic cannot describe as JSON
        raise TypeError(
            f"cannot build a JSON schema from {_describe(schema)}: {exc}. Use JSON-friendly "
            "field types (str, int, float, bool, list, dict, Literal, nested models)"
        ) from None
    name = _safe_name(f"{item.__name__}_list" if is_list else item.__name__)
    body, wrapped = _as_object(inner)
    from pydantic import ValidationError

    def validate(data: Any) -> Any:
        try:
            return adapter.validate_python(data)
        except ValidationError as exc:
            raise SchemaMismatch(_pydantic_problems(exc)) from None

    return OutputSchema(name, body, strict_variant(body), wrapped, schema, validate)


def _pydantic_typeddict(cls: Any) -> Any:
    """A ``typing_extensions.TypedDict`` with ``cls``'s name, fields and required keys."""
    import sys

    if sys.version_info >= (3, 12) or type(cls).__module__ == "typing_extensions":
        return cls
    import typing_extensions as te

    hints = typing.get_type_hints(cls)
    required = getattr(cls, "__required_keys__", frozenset(hints))
    fields = {
        key: (te.Required[hint] if key in required else te.NotRequired[hint])
        for key, hint in hints.items()
    }
    converted = te.TypedDict(cls.__name__, fields)  # type: ignore[misc]
    converted.__doc__ = cls.__doc__
    return converted


def _pydantic_problems(exc: Any) -> list[str]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(the answer)"
        out.append(f"{loc}: {err['msg']} (got {json.dumps(err.get('input'), default=str):.80})")
    return out


# -- JSON-schema dicts (jsonschema does the work) ------------------------------------------


@functools.lru_cache(maxsize=256)
def _from_dict(key: str) -> OutputSchema:
    raw = json.loads(key)
    try:
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError
    except ImportError:  # pragma: no cover - a core dependency
        raise InvalidInput(
            "a JSON-schema dict needs the jsonschema package: pip install jsonschema"
        ) from None
    try:
        Draft202012Validator.check_schema(raw)
    except SchemaError as exc:
        raise InvalidInput(f"schema= is not a valid JSON schema: {exc.message}") from None
    validator = Draft202012Validator(raw)
    body, wrapped = _as_object(raw)

    def validate(data: Any) -> Any:
        problems = [
            f"{'.'.join(str(p) for p in err.absolute_path) or '(the answer)'}: {err.message:.200}"
            for err in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
        ]
        if problems:
            raise SchemaMismatch(problems)
        return data

    title = raw.get("title") if isinstance(raw.get("title"), str) else None
    strict = body if _already_strict(body) else None
    return OutputSchema(_safe_name(title or "answer"), body, strict, wrapped, raw, validate)


# -- shapes ------------------------------------------------------------------------------


def _as_object(schema: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """``(object schema, wrapped)``: non-object schemas go under ``{"items": ...}``."""
    if schema.get("type") == "object":
        return schema, False
    defs: dict[str, Any] = {k: schema[k] for k in ("$defs", "definitions") if k in schema}
    inner = {k: v for k, v in schema.items() if k not in defs}
    body: dict[str, Any] = {
        "type": "object",
        "properties": {WRAP_KEY: inner},
        "required": [WRAP_KEY],
        "additionalProperties": False,
        **defs,
    }
    return body, True


def strict_variant(schema: dict[str, Any]) -> dict[str, Any] | None:
    """OpenAI strict mode's form of ``schema`` (as the openai SDK derives it from pydantic):
    every object closed and all its properties required, ``None`` defaults dropped.
    None when an object is open by design (``dict[str, X]``): strict mode cannot say it."""
    try:
        return typing.cast(dict[str, Any], _strict(schema))
    except _NotStrict:
        return None


class _NotStrict(Exception):
    pass


_SUBSCHEMA_MAPS = ("properties", "$defs", "definitions")
_SUBSCHEMA_LISTS = ("anyOf", "allOf", "oneOf", "prefixItems")
_SUBSCHEMAS = ("items", "not", "additionalProperties")


def _children(node: dict[str, Any], visit: Any) -> dict[str, Any]:
    """``node`` with ``visit`` applied to each of its sub-schemas (and nothing else)."""
    out = dict(node)
    for key in _SUBSCHEMA_MAPS:
        if isinstance(node.get(key), dict):
            out[key] = {name: visit(sub) for name, sub in node[key].items()}
    for key in _SUBSCHEMA_LISTS:
        if isinstance(node.get(key), list):
            out[key] = [visit(sub) for sub in node[key]]
    for key in _SUBSCHEMAS:
        if isinstance(node.get(key), dict):
            out[key] = visit(node[key])
    return out


def _is_object(node: dict[str, Any]) -> bool:
    return node.get("type") == "object" or "properties" in node


def _strict(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    out = _children(node, _strict)
    if "default" in out and out["default"] is None:
        del out["default"]
    if _is_object(out):
        extra = out.get("additionalProperties")
        if extra not in (None, False) or (extra is None and "properties" not in out):
            raise _NotStrict()  # an open dict (dict[str, X], dict): strict cannot say it
        out["additionalProperties"] = False
        out["required"] = list(out.get("properties", {}))
    return out


def _already_strict(node: Any) -> bool:
    if not isinstance(node, dict):
        return True
    if _is_object(node):
        props = node.get("properties", {})
        if node.get("additionalProperties") is not False:
            return False
        if set(node.get("required", ())) != set(props):
            return False
    verdicts: list[bool] = []
    _children(node, lambda sub: verdicts.append(_already_strict(sub)))
    return all(verdicts)


def _safe_name(name: str) -> str:
    return _NAME_CHARS.sub("_", name).strip("_")[:64] or "answer"


def _load_json(text: str) -> Any:
    """The JSON in ``text``: the whole text, a fenced block, or the first {...}/[...]."""
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    if fenced:
        stripped = fenced.group(1).strip()
    try:  # strict=False: a raw newline inside a string is a common model quirk, not an error
        return json.loads(stripped, strict=False)
    except json.JSONDecodeError as exc:
        first_error = exc
    starts = [i for i in (stripped.find("{"), stripped.find("[")) if i >= 0]
    if starts:
        try:
            value, _ = json.JSONDecoder(strict=False).raw_decode(stripped[min(starts) :])
            return value
        except json.JSONDecodeError:
            pass
    shown = stripped[:60] + ("..." if len(stripped) > 60 else "")
    raise SchemaMismatch(
        [f"the answer is not JSON ({first_error.msg} at position {first_error.pos}): {shown!r}"]
    )
