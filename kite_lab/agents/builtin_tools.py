"""Built-in tools: a calculator, the current date and time, and vector-memory search.

The calculator walks the expression's AST and evaluates only numbers, arithmetic
operators and a fixed list of math functions -- never ``eval``, so a model cannot reach
Python through it. Sizes are bounded (expression length, exponents, integer size) so a
proposed ``9**9**9`` is an error message, not a frozen event loop.

Agents get these by name: ``create_agent(..., tools=["calculator", "current_datetime",
"search_memory"])``. A tool the user created with the same name takes precedence.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from kite_lab.core.errors import ToolError

from .tools import Tool, build_tool

if TYPE_CHECKING:
    from kite_lab.memory.vector import Hit

    from .host import AgentHost

__all__ = [
    "BUILTIN_TOOLS",
    "builtin_tool",
    "calculate",
    "calculator_tool",
    "current_datetime",
    "datetime_tool",
    "memory_search_tool",
]

MAX_EXPRESSION_CHARS = 500
MAX_EXPONENT = 10_000
MAX_INT_BITS = 100_000

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "sqrt": math.sqrt,
    "exp": math.exp,
    "log": math.log,
    "log10": math.log10,
    "log2": math.log2,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "asin": math.asin,
    "acos": math.acos,
    "atan": math.atan,
    "floor": math.floor,
    "ceil": math.ceil,
    "factorial": math.factorial,
    "hypot": math.hypot,
    "degrees": math.degrees,
    "radians": math.radians,
}
_CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau, "inf": math.inf}


def calculate(expression: str) -> int | float:
    """Evaluate an arithmetic expression such as ``2 * (3 + 4) ** 2`` or ``sqrt(2) / 3``.

    Args:
        expression: numbers, + - * / // % **, parentheses, pi, e, and the functions
            abs, round, min, max, sqrt, exp, log, log10, log2, sin, cos, tan, asin, acos,
            atan, floor, ceil, factorial, hypot, degrees, radians.
    """
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ValueError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expression.replace("^", "**").strip(), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"not an arithmetic expression: {exc.msg}") from None
    value: int | float = _eval(tree.body)
    return value


def _eval(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            if abs(right) > MAX_EXPONENT:
                raise ValueError(f"exponent {right} is too large (limit {MAX_EXPONENT})")
            if (
                isinstance(left, int)
                and isinstance(right, int)
                and left.bit_length() * right > MAX_INT_BITS
            ):
                raise ValueError("the result is too large")
        if isinstance(node.op, ast.Mult) and isinstance(left, int) and isinstance(right, int):
            if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                raise ValueError("the result is too large")
        result = _BINARY[type(node.op)](left, right)
        return _check_size(result)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        args = [_eval(a) for a in node.args]
        if node.func.id == "factorial" and args and isinstance(args[0], int) and args[0] > 1000:
            raise ValueError("factorial argument too large (limit 1000)")
        return _check_size(_FUNCTIONS[node.func.id](*args))
    allowed = ", ".join(sorted(_FUNCTIONS))
    raise ValueError(
        f"unsupported element {ast.unparse(node)!r}: use numbers, + - * / // % **, "
        f"parentheses, pi, e and the functions {allowed}"
    )


def _check_size(value: Any) -> Any:
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise ValueError("the result is too large")
    if isinstance(value, complex):
        raise ValueError("the result is a complex number")
    return value


def current_datetime(timezone: str = "UTC") -> dict[str, str]:
    """The current date and time.

    Args:
        timezone: an IANA time zone name such as "UTC", "Europe/Paris" or "America/New_York".
    """
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {timezone!r}; use an IANA name like 'Europe/Paris'"
        ) from None
    now = datetime.now(zone)
    return {
        "datetime": now.isoformat(timespec="seconds"),
        "date": now.date().isoformat(),
        "time": now.strftime("%H:%M:%S"),
        "weekday": now.strftime("%A"),
        "timezone": timezone,
    }


def calculator_tool() -> Tool:
    return build_tool("calculator", calculate, run_in_thread=False)


def datetime_tool() -> Tool:
    return build_tool("current_datetime", current_datetime, run_in_thread=False)


def memory_search_tool(memory: Any, *, name: str = "search_memory", default_top_k: int = 3) -> Tool:
    """A tool searching ``memory`` (a VectorMemory, or anything with ``asearch``)."""

    async def search_memory(query: str, top_k: int = default_top_k) -> list[dict[str, Any]]:
        """Search the knowledge base for passages relevant to a query.

        Args:
            query: what to look for, in natural language.
            top_k: how many passages to return (1-20).
        """
        hits = await memory.asearch(query, top_k=max(1, min(int(top_k), 20)))
        return [
            {
                "text": h.text,
                "score": round(float(h.score), 4),
                "doc_id": h.doc_id,
                "chunk_id": h.chunk_id,
            }
            for h in hits
        ]

    return build_tool(name, search_memory)


def _memory_tool(host: AgentHost) -> Tool:
    return memory_search_tool(_LazyMemory(host))


class _LazyMemory:
    """Opens the host's vector memory on the first search, not when the agent is built."""

    def __init__(self, host: AgentHost) -> None:
        self._host = host

    async def asearch(self, query: str, top_k: int) -> list[Hit]:
        return await self._host.vector_memory.asearch(query, top_k=top_k)


BUILTIN_TOOLS: dict[str, Callable[[AgentHost], Tool]] = {
    "calculator": lambda host: calculator_tool(),
    "current_datetime": lambda host: datetime_tool(),
    "search_memory": _memory_tool,
}


def builtin_tool(host: AgentHost, name: str) -> Tool:
    """The built-in tool ``name`` for ``host`` (ToolError naming the built-ins if none)."""
    factory = BUILTIN_TOOLS.get(name)
    if factory is None:
        raise ToolError(
            f"no tool named {name!r}; create it with ai.create_tool({name!r}, func) or use a "
            f"built-in: {', '.join(BUILTIN_TOOLS)}"
        )
    return factory(host)
