"""Tools: plain Python functions an agent may call, described to the model by a JSON schema.

Why the schema comes from type hints and the docstring (through pydantic): the function
is then the single source of truth. The same pydantic model that produced the schema
validates the arguments a model proposes, so what the model was told and what the
function receives cannot drift apart. A parameter without a type hint is refused at
``create_tool`` time, because the model would have to guess what to send.

Sync functions run in a worker thread by default, so a slow one (an HTTP call, a file
read) never freezes other agents sharing the event loop; pass ``run_in_thread=False``
for quick pure functions. Return values are serialized to text for the model
(``serialize_result``); an object that is not JSON-serializable is sent as ``str()``
with a note instead of failing the run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import json
import re
import typing
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from kite_lab.core.errors import ToolArgumentsError, ToolError
from kite_lab.core.types import ToolSpec

__all__ = [
    "SchemaTool",
    "Tool",
    "ToolArgumentsError",
    "ToolRegistry",
    "build_tool",
    "parse_docstring",
    "serialize_result",
]

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: tool output longer than this is cut before it goes back to the model
MAX_RESULT_CHARS = 20_000


@dataclasses.dataclass(eq=False)
class Tool:
    """A callable offered to a model. Build one with ``ai.create_tool`` or ``build_tool``."""

    name: str
    func: Callable[..., Any]
    description: str
    spec: ToolSpec
    #: validates (and coerces) the model's arguments; field aliases are the parameter names
    args_model: type[BaseModel]
    is_async: bool
    run_in_thread: bool
    #: seconds before a call is abandoned (None: no limit of its own)
    timeout: float | None = None
    _params: tuple[tuple[str, str], ...] = ()  # (parameter name, model field name)

    def validate(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """The keyword arguments for ``func``; ToolArgumentsError says what is wrong."""
        if not isinstance(arguments, Mapping):
            raise ToolArgumentsError(
                self.name, [f"expected a JSON object, got {type(arguments).__name__}"]
            )
        try:
            parsed = self.args_model.model_validate(dict(arguments))
        except ValidationError as exc:
            raise ToolArgumentsError(self.name, _problems(exc)) from None
        return {param: getattr(parsed, field) for param, field in self._params}

    async def ainvoke(self, arguments: Mapping[str, Any]) -> Any:
        """Validate ``arguments`` and call the function; returns what it returns."""
        kwargs = self.validate(arguments)
        call = self._call(kwargs)
        if self.timeout is not None:
            return await asyncio.wait_for(call, self.timeout)
        return await call

    async def _call(self, kwargs: dict[str, Any]) -> Any:
        if self.is_async:
            result = self.func(**kwargs)
        elif self.run_in_thread:
            result = await asyncio.to_thread(self.func, **kwargs)
        else:
            result = self.func(**kwargs)
        if inspect.isawaitable(result):  # e.g. a sync wrapper returning a coroutine
            result = await result
        return result

    def invoke(self, arguments: Mapping[str, Any]) -> Any:
        """Sync form of ``ainvoke`` (for trying a tool in a notebook cell)."""
        from kite_lab.core.runner import run_sync

        return run_sync(self.ainvoke(arguments))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the wrapped function directly, as if it were not a tool."""
        return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        params = ", ".join(p for p, _ in self._params)
        return f"Tool({self.name}({params}))"


class _AnyArguments(BaseModel):
    model_config = ConfigDict(extra="allow")


@dataclasses.dataclass(eq=False)
class SchemaTool(Tool):
    """A tool described by a JSON schema it did not derive from type hints (an MCP
    server's tool): arguments are checked against that schema with ``jsonschema``, and
    ``func`` receives them as keyword arguments."""

    _validator: Any = None

    def validate(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(arguments, Mapping):
            raise ToolArgumentsError(
                self.name, [f"expected a JSON object, got {type(arguments).__name__}"]
            )
        problems = [
            f"{'.'.join(str(p) for p in err.absolute_path) or 'arguments'}: {err.message}"
            for err in self._validator.iter_errors(dict(arguments))
        ]
        if problems:
            raise ToolArgumentsError(self.name, problems)
        return dict(arguments)

    def __repr__(self) -> str:
        return f"Tool({self.name}({', '.join(self.spec.parameters.get('properties', {}))}))"


def schema_tool(
    name: str,
    description: str,
    parameters: Mapping[str, Any],
    func: Callable[..., Any],
    *,
    timeout: float | None = None,
) -> SchemaTool:
    """A ``SchemaTool`` calling the async ``func(**arguments)``; ``parameters`` is its
    JSON schema as given (an object schema; a missing one means no arguments)."""
    from jsonschema import Draft202012Validator

    if not isinstance(name, str) or not _NAME.match(name):
        raise ToolError(f"invalid tool name {name!r}: use 1-64 letters, digits, '_' or '-'")
    schema = dict(parameters or {}) or {"type": "object", "properties": {}}
    schema.setdefault("type", "object")
    spec = ToolSpec(name=name, description=(description or "").strip(), parameters=schema)
    return SchemaTool(
        name=name, func=func, description=spec.description, spec=spec,
        args_model=_AnyArguments, is_async=True, run_in_thread=False, timeout=timeout,
        _validator=Draft202012Validator(schema),
    )


def build_tool(
    name: str,
    func: Callable[..., Any],
    description: str | None = None,
    *,
    run_in_thread: bool | None = None,
    timeout: float | None = None,
) -> Tool:
    """A Tool for ``func``: schema from its type hints, description from its docstring."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ToolError(
            f"invalid tool name {name!r}: use 1-64 letters, digits, '_' or '-' "
            "(the providers accept nothing else)"
        )
    if not callable(func):
        raise ToolError(f"tool {name!r}: expected a function, got {type(func).__name__}")
    if timeout is not None and timeout <= 0:
        raise ToolError(f"tool {name!r}: timeout must be > 0 seconds, got {timeout}")
    target = _annotated_target(func)
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError) as exc:
        raise ToolError(f"tool {name!r}: cannot read the signature of {func!r} ({exc})") from None
    try:
        hints = typing.get_type_hints(target, include_extras=True)
    except Exception as exc:  # a forward reference that does not resolve
        raise ToolError(
            f"tool {name!r}: cannot resolve the type hints of {func!r}: {exc}"
        ) from None

    summary, param_docs = parse_docstring(inspect.getdoc(target) or "")
    fields: dict[str, Any] = {}
    params: list[tuple[str, str]] = []
    for index, param in enumerate(signature.parameters.values()):
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            star = "*" if param.kind == param.VAR_POSITIONAL else "**"
            raise ToolError(
                f"tool {name!r}: parameter {star}{param.name} cannot be described to a model; "
                "use named, annotated parameters"
            )
        if param.kind == param.POSITIONAL_ONLY:
            raise ToolError(
                f"tool {name!r}: parameter {param.name!r} is positional-only; remove the '/' "
                "so it can be passed by name"
            )
        if param.name not in hints:
            raise ToolError(
                f"tool {name!r}: parameter {param.name!r} of {_qualname(func)} has no type "
                f"annotation; annotate it (e.g. `{param.name}: str`) so the model knows "
                "what to send"
            )
        field_name = f"p{index}"  # never collides with BaseModel attributes
        default = ... if param.default is param.empty else param.default
        fields[field_name] = (
            hints[param.name],
            Field(default, alias=param.name, description=param_docs.get(param.name)),
        )
        params.append((param.name, field_name))

    try:
        args_model = create_model(
            f"{name}_arguments",
            __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=False),
            **fields,
        )
        schema = _clean_schema(args_model.model_json_schema(by_alias=True))
    except Exception as exc:  # a hint pydantic cannot turn into a schema
        raise ToolError(
            f"tool {name!r}: cannot build a JSON schema from the type hints of "
            f"{_qualname(func)}: {exc}. Use JSON-friendly types (str, int, float, bool, "
            "list, dict, Literal, pydantic models)"
        ) from None

    text = description if description is not None else summary
    spec = ToolSpec(name=name, description=(text or "").strip(), parameters=schema)
    is_async = inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(func)
    return Tool(
        name=name,
        func=func,
        description=spec.description,
        spec=spec,
        args_model=args_model,
        is_async=is_async,
        run_in_thread=(not is_async) if run_in_thread is None else (run_in_thread and not is_async),
        timeout=timeout,
        _params=tuple(params),
    )


class ToolRegistry(Mapping[str, Tool]):
    """The tools created on one Kite, by name. Names are unique."""

    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}

    def create(
        self,
        name: str,
        func: Callable[..., Any],
        description: str | None = None,
        *,
        run_in_thread: bool | None = None,
        timeout: float | None = None,
    ) -> Tool:
        """Build a tool from ``func`` and register it under ``name``."""
        self._check_free(name)
        tool = build_tool(name, func, description, run_in_thread=run_in_thread, timeout=timeout)
        self._tools[name] = tool
        return tool

    def create_from_schema(
        self,
        name: str,
        description: str,
        parameters: Mapping[str, Any],
        func: Callable[..., Any],
        *,
        timeout: float | None = None,
    ) -> Tool:
        """Register a tool described by a JSON schema (``schema_tool``), e.g. an MCP tool."""
        self._check_free(name)
        tool = schema_tool(name, description, parameters, func, timeout=timeout)
        self._tools[name] = tool
        return tool

    def register(self, tool: Tool) -> Tool:
        if not isinstance(tool, Tool):
            raise ToolError(f"expected a Tool, got {type(tool).__name__}; use create(name, func)")
        self._check_free(tool.name)
        self._tools[tool.name] = tool
        return tool

    def remove(self, name: str) -> None:
        if self._tools.pop(name, None) is None:
            raise ToolError(f"no tool named {name!r}; registered: {', '.join(self) or 'none'}")

    def _check_free(self, name: str) -> None:
        if name in self._tools:
            raise ToolError(
                f"a tool named {name!r} already exists; pick another name or remove it first "
                f"with ai.tools.remove({name!r})"
            )

    def __getitem__(self, name: str) -> Tool:
        return self._tools[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tools)

    def __len__(self) -> int:
        return len(self._tools)

    def __repr__(self) -> str:
        return f"ToolRegistry({', '.join(self._tools) or 'empty'})"


# -- serialization of results ------------------------------------------------------------


def serialize_result(value: Any, max_chars: int = MAX_RESULT_CHARS) -> tuple[Any, str]:
    """``(jsonable value, text for the model)`` for what a tool returned.

    Strings pass through; JSON-friendly values (and pydantic models, dataclasses) become
    JSON; anything else becomes ``str(value)`` with a note saying so.
    """
    if isinstance(value, str):
        data: Any = value
        text = value
    else:
        try:
            data = _jsonable(value)
            text = json.dumps(data, ensure_ascii=False, default=_json_default)
            data = json.loads(text)  # what a trace or the service would see
        except (TypeError, ValueError):
            data = str(value)
            kind = type(value).__name__
            text = f"{data}\n[note: the result ({kind}) is not JSON-serializable; sent as str()]"
    if len(text) > max_chars:
        text = (
            text[:max_chars]
            + f"\n[note: result truncated from {len(text)} to {max_chars} characters]"
        )
    return data, text


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return value


def _json_default(value: Any) -> Any:
    import datetime
    import decimal
    import enum
    import uuid
    from pathlib import PurePath

    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, uuid.UUID | PurePath):
        return str(value)
    if isinstance(value, BaseModel) or (
        dataclasses.is_dataclass(value) and not isinstance(value, type)
    ):
        return _jsonable(value)
    if isinstance(value, set | frozenset):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")


# -- docstrings and schemas ------------------------------------------------------------

_SECTION = re.compile(
    r"^(Args|Arguments|Parameters|Params|Keyword Args|Returns?|Yields?|Raises|Examples?|Notes?|"
    r"See Also|Attributes)\s*:?\s*$",
    re.I,
)
_PARAM_SECTIONS = {"args", "arguments", "parameters", "params", "keyword args"}
_GOOGLE_PARAM = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_NUMPY_PARAM = re.compile(r"^(\w+)\s*(?::.*)?$")
_SPHINX_PARAM = re.compile(r"^:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")


def parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """``(summary, {parameter: description})`` from a Google, Sphinx or NumPy docstring."""
    lines = doc.expandtabs().splitlines()
    summary: list[str] = []
    params: dict[str, str] = {}
    section: str | None = None  # None: still in the summary
    numpy = False
    base_indent: int | None = None
    current: str | None = None
    i = 0
    while i < len(lines):
        line, stripped = lines[i], lines[i].strip()
        indent = len(line) - len(line.lstrip())
        underlined = (
            i + 1 < len(lines) and bool(lines[i + 1].strip()) and set(lines[i + 1].strip()) == {"-"}
        )
        header = _SECTION.match(stripped)
        if stripped and (header or underlined):
            section = (header.group(1) if header else stripped).lower()
            numpy, base_indent, current = underlined, None, None
            i += 2 if underlined else 1
            continue
        sphinx = _SPHINX_PARAM.match(stripped)
        if sphinx:
            current, section = sphinx.group(1), "sphinx"
            params[current] = sphinx.group(2).strip()
        elif stripped.startswith(":"):  # :returns:, :raises: end a sphinx parameter
            current, section = None, "other"
        elif section is None:
            summary.append(stripped)
        elif section in _PARAM_SECTIONS and stripped:
            if base_indent is None:
                base_indent = indent
            match = (_NUMPY_PARAM if numpy else _GOOGLE_PARAM).match(stripped)
            if indent <= base_indent and match:
                current = match.group(1)
                params[current] = "" if numpy else match.group(2).strip()
            elif current:
                params[current] = f"{params[current]} {stripped}".strip()
        elif section == "sphinx" and current and stripped:
            params[current] = f"{params[current]} {stripped}".strip()
        i += 1
    text = "\n".join(summary).strip()
    return re.sub(r"\n{3,}", "\n\n", text), {k: v for k, v in params.items() if v}


def _clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop pydantic's ``title`` noise; keep a plain object schema the providers accept."""

    def strip(node: Any, in_properties: bool = False) -> Any:
        if isinstance(node, dict):
            return {
                k: strip(v, k in ("properties", "$defs"))
                for k, v in node.items()
                if not (k == "title" and not in_properties and isinstance(v, str))
            }
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    cleaned: dict[str, Any] = strip(schema)
    cleaned.setdefault("properties", {})
    cleaned["type"] = "object"
    cleaned["additionalProperties"] = False
    return cleaned


def _annotated_target(func: Callable[..., Any]) -> Any:
    """The object whose annotations and docstring describe ``func``."""
    while isinstance(func, functools.partial):
        func = func.func
    if inspect.isfunction(func) or inspect.ismethod(func) or inspect.isbuiltin(func):
        return func
    return type(func).__call__ if callable(func) else func


def _qualname(func: Callable[..., Any]) -> str:
    name = getattr(func, "__qualname__", None) or getattr(type(func), "__qualname__", None)
    return str(name) if name else repr(func)


def _problems(exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "arguments"
        if err["type"] == "extra_forbidden":
            out.append(f"unexpected argument {loc!r}")
        elif err["type"] == "missing":
            out.append(f"missing required argument {loc!r}")
        else:
            out.append(f"{loc!r}: {err['msg']} (got {err.get('input')!r})")
    return out
