"""The tool-call guard: everything between "the model asked for a tool" and the function.

Why a separate guard: a model's tool call is untrusted input. Before any function runs,
the guard checks, in code (never in the prompt), that the tool is on this agent's
whitelist, that the arguments were valid JSON and match the tool's schema. Anything that
goes wrong -- an unknown or refused tool, bad arguments, a tool that raises or times out
-- becomes an error message returned to the model so it can correct itself, and is
counted. Nothing a model proposes can crash the run.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kite_lab.core.errors import ToolError, redact
from kite_lab.core.types import ToolCall, ToolCallRecord, ToolSpec

from .tools import Tool, ToolArgumentsError, serialize_result

__all__ = ["GuardOutcome", "ToolGuard"]

#: error kinds counted by the guard
OUTCOMES = ("ok", "unknown_tool", "refused", "invalid_arguments", "tool_error", "timeout")


@dataclass(slots=True)
class GuardOutcome:
    """What happened to one proposed call: the record for RunResult and the model's text."""

    call: ToolCall
    record: ToolCallRecord
    #: the content of the ``tool`` message sent back to the model
    content: str
    #: one of OUTCOMES
    kind: str = "ok"


@dataclass
class ToolGuard:
    """Runs an agent's tool calls against its whitelist; counts every outcome."""

    tools: Mapping[str, Tool]
    #: tool names that exist elsewhere (on the Kite, built-ins): proposing one is "refused"
    known_elsewhere: Container[str] = ()
    counts: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.tools = dict(self.tools)

    @property
    def specs(self) -> list[ToolSpec]:
        return [tool.spec for tool in self.tools.values()]

    def allowed(self, name: str) -> bool:
        return name in self.tools

    async def execute(
        self, call: ToolCall, secrets: Callable[[], Iterable[str]] = tuple
    ) -> GuardOutcome:
        """Run ``call`` if it passes every check; never raises (except cancellation).

        ``secrets()`` lists values to scrub from a failing tool's message (called only then).
        """
        started = time.perf_counter()
        tool = self.tools.get(call.name)
        if tool is None:
            available = ", ".join(sorted(self.tools)) or "none"
            if call.name in self.known_elsewhere:
                message = (
                    f"tool {call.name!r} is not available to this agent; "
                    f"use only these tools: {available}"
                )
                return self._fail(call, "refused", message, started)
            return self._fail(
                call,
                "unknown_tool",
                f"there is no tool named {call.name!r}; available tools: {available}",
                started,
            )
        if call.raw_arguments is not None:
            return self._fail(
                call,
                "invalid_arguments",
                f"the arguments for {call.name!r} were not a JSON object "
                f"({call.raw_arguments[:200]!r}); call the tool again with a JSON object "
                "matching its schema",
                started,
            )
        try:
            value = await tool.ainvoke(call.arguments)
        except ToolArgumentsError as exc:
            return self._fail(
                call,
                "invalid_arguments",
                f"{exc}. Call the tool again with corrected arguments",
                started,
            )
        except TimeoutError:
            return self._fail(
                call,
                "timeout",
                f"tool {call.name!r} did not finish within {tool.timeout} s",
                started,
            )
        except Exception as exc:  # the tool's own failure is information for the model
            detail = redact(str(exc), secrets()) or "no message"
            return self._fail(
                call,
                "tool_error",
                f"tool {call.name!r} failed: {type(exc).__name__}: {detail}",
                started,
            )
        data, text = serialize_result(value)
        self.counts["ok"] += 1
        record = ToolCallRecord(
            name=call.name,
            arguments=dict(call.arguments),
            result=data,
            ok=True,
            latency_s=time.perf_counter() - started,
        )
        return GuardOutcome(call, record, text, "ok")

    def _fail(self, call: ToolCall, kind: str, message: str, started: float) -> GuardOutcome:
        self.counts[kind] += 1
        record = ToolCallRecord(
            name=call.name,
            arguments=dict(call.arguments),
            result=None,
            ok=False,
            latency_s=time.perf_counter() - started,
            error=message,
        )
        return GuardOutcome(call, record, f"ERROR: {message}", kind)


def check_unique(tools: Iterable[Tool]) -> dict[str, Tool]:
    """Tools by name; two different tools with one name is a ToolError."""
    out: dict[str, Tool] = {}
    for tool in tools:
        previous = out.get(tool.name)
        if previous is not None and previous is not tool:
            raise ToolError(
                f"two different tools are named {tool.name!r}; tool names must be unique"
            )
        out[tool.name] = tool
    return out


def describe_arguments(arguments: Mapping[str, Any], limit: int = 120) -> str:
    """``a=1, b='x'`` shortened for verbose output."""
    text = ", ".join(f"{k}={v!r}" for k, v in arguments.items())
    return text if len(text) <= limit else text[: limit - 3] + "..."
