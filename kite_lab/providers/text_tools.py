"""Tool calling through plain text, for models without native tool calls (the local GGUFs).

Why a text protocol: small chat models have no tool-call wire format, but they can follow
an instruction. The tool specs go into the system prompt with the instruction to reply
with ``{"tool": name, "arguments": {...}}``; the reply is parsed leniently (```json fences,
text around the object, a list of calls) into the same ``ToolCall`` type every provider
returns. A reply that clearly tried to call a tool but is malformed gets one repair round
(the provider re-asks with the parse error) before it is returned as plain text.

Everything here is a pure function, testable without a model.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from kite_lab.core.errors import InvalidParameter
from kite_lab.core.types import Message, ToolCall, ToolSpec
from kite_lab.providers.base import split_system

__all__ = [
    "TOOL_CALL_FORMAT",
    "ToolPlan",
    "ToolReply",
    "format_tool_prompt",
    "parse_tool_reply",
    "plan_tools",
    "repair_messages",
    "to_chat_messages",
]

TOOL_CALL_FORMAT = '{"tool": "<tool name>", "arguments": {"<argument name>": <value>}}'
TOOL_RESULT_PREFIX = "Tool result"


# -- offering tools -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToolPlan:
    """The tools offered in one request: the system-prompt section and the valid names."""

    prompt: str | None = None
    names: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        return self.prompt is not None


def format_tool_prompt(tools: Sequence[ToolSpec], required: bool | str = False) -> str:
    """The system-prompt section offering ``tools``.

    ``required``: False (the model may answer in text), True (it must call a tool), or a
    tool name (it must call that one).
    """
    lines = ["You can call tools. Available tools:", ""]
    for tool in tools:
        lines.append(f"- {tool.name}: {tool.description.strip() or 'no description'}")
        schema = json.dumps(tool.parameters or {"type": "object", "properties": {}}, sort_keys=True)
        lines.append(f"  Arguments (JSON schema): {schema}")
    lines += [
        "",
        "To call a tool, reply with only a JSON object of this form and no other text:",
        TOOL_CALL_FORMAT,
        "To call several tools at once, reply with a JSON list of such objects.",
    ]
    if required is True:
        lines.append("You must call a tool in this reply.")
    elif isinstance(required, str) and required:
        lines.append(f"You must call the tool {required!r} in this reply.")
    else:
        lines.append("If no tool is needed, answer normally in plain text.")
    lines.append(f'Tool results come back in messages that start with "{TOOL_RESULT_PREFIX}".')
    return "\n".join(lines)


def _forced_name(choice: dict[str, Any]) -> str | None:
    """The tool named by an OpenAI- or Anthropic-style tool_choice dict."""
    function = choice.get("function")
    if isinstance(function, dict) and isinstance(function.get("name"), str):
        return str(function["name"])
    name = choice.get("name")
    return name if isinstance(name, str) else None


def plan_tools(tools: Sequence[ToolSpec], tool_choice: str | dict[str, Any] | None) -> ToolPlan:
    """Which tools to offer and how, from a request's ``tools`` and ``tool_choice``.

    tool_choice: None/"auto" (may call), "required"/"any" (must call), "none" (no tools),
    or ``{"name": ...}`` / ``{"type": "function", "function": {"name": ...}}`` (that tool).
    """
    if not tools or tool_choice == "none":
        return ToolPlan()
    names = tuple(t.name for t in tools)
    if tool_choice is None or tool_choice == "auto":
        return ToolPlan(format_tool_prompt(tools), names)
    if tool_choice in ("required", "any"):
        return ToolPlan(format_tool_prompt(tools, required=True), names)
    if isinstance(tool_choice, dict) and (name := _forced_name(tool_choice)) is not None:
        chosen = [t for t in tools if t.name == name]
        if not chosen:
            raise InvalidParameter(
                f"tool_choice names tool {name!r}, which is not among the tools "
                f"offered ({', '.join(names)})",
                provider="local",
            )
        return ToolPlan(format_tool_prompt(chosen, required=name), (name,))
    raise InvalidParameter(
        f"tool_choice {tool_choice!r} is not understood; use 'auto', 'required', 'none' "
        "or {'name': '<tool name>'}",
        provider="local",
    )


# -- the conversation as chat-template messages ----------------------------------------


def _call_json(calls: Sequence[ToolCall]) -> str:
    items = [{"tool": c.name, "arguments": c.arguments} for c in calls]
    return json.dumps(items[0] if len(items) == 1 else items, ensure_ascii=False)


def merge_adjacent(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Join consecutive messages of one role: many chat templates require alternation."""
    out: list[dict[str, Any]] = []
    for message in messages:
        if out and out[-1]["role"] == message["role"]:
            out[-1] = {**out[-1], "content": f"{out[-1]['content']}\n\n{message['content']}"}
        else:
            out.append(dict(message))
    return out


def to_chat_messages(
    messages: Sequence[Message], system: str | None, tool_prompt: str | None = None
) -> list[dict[str, Any]]:
    """``{"role", "content"}`` dicts any chat template can render.

    Tool calls become the protocol's JSON in the assistant's text; tool results become
    user messages starting with "Tool result"; system prompts and the tool section are
    joined into one leading system message.
    """
    system_text, rest = split_system(messages, system)
    if tool_prompt:
        system_text = f"{system_text}\n\n{tool_prompt}" if system_text else tool_prompt
    out: list[dict[str, Any]] = [{"role": "system", "content": system_text}] if system_text else []
    call_names: dict[str, str] = {}
    for message in rest:
        if message.role == "assistant":
            content = message.content
            if message.tool_calls:
                call_names.update((c.id, c.name) for c in message.tool_calls)
                content = "\n".join(p for p in (content, _call_json(message.tool_calls)) if p)
            out.append({"role": "assistant", "content": content})
        elif message.role == "tool":
            name = message.name or call_names.get(message.tool_call_id or "", "a tool")
            out.append(
                {"role": "user", "content": f"{TOOL_RESULT_PREFIX} from {name}:\n{message.content}"}
            )
        else:
            out.append({"role": message.role, "content": message.content})
    return merge_adjacent(out)


# -- reading the reply -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToolReply:
    """A model reply read under the text protocol.

    ``calls``: the tool calls found (empty: a plain-text answer). ``prefix``: the text
    before the call (the answer's text when there are calls). ``error``: set when the reply
    looks like a call attempt that cannot be used (worth one repair round).
    """

    text: str
    calls: list[ToolCall] = field(default_factory=list)
    prefix: str = ""
    error: str | None = None

    def with_calls(self, calls: list[ToolCall]) -> ToolReply:
        return replace(self, calls=calls, error=None)


_FENCE = re.compile(r"```[ \t]*[A-Za-z_]*[ \t]*\n?(.*?)(?:```|\Z)", re.S)


def _new_call_id() -> str:
    return "call_" + secrets.token_hex(12)


def _candidate(text: str) -> tuple[int, str] | None:
    """Where a call may start and its text: the first ``` fence or bare ``{``/``[``."""
    braces = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    brace = min(braces) if braces else None
    fence = _FENCE.search(text)
    if fence is not None and (brace is None or fence.start() <= brace):
        return fence.start(), fence.group(1)
    if brace is not None:
        return brace, text[brace:]
    return None


def _looks_like_call(body: str, names: Collection[str]) -> bool:
    return bool(re.search(r"""["']tool["']""", body)) or any(
        f'"{name}"' in body or f"'{name}'" in body for name in names
    )


def _arguments(item: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    raw = next((item[k] for k in ("arguments", "args", "parameters") if k in item), None)
    if raw is None:
        return {}, None
    if isinstance(raw, str):  # arguments sent as a JSON string, OpenAI style
        try:
            raw = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError:
            return None, "the arguments are a string that is not a JSON object"
    if not isinstance(raw, dict):
        return None, f'"arguments" must be a JSON object, not {type(raw).__name__}'
    return raw, None


def _calls_from(
    value: Any, names: Collection[str], new_id: Callable[[], str]
) -> tuple[list[ToolCall], str | None]:
    """Tool calls in a parsed JSON value; ``([], None)`` when it is not a call at all."""
    items = value if isinstance(value, list) else [value]
    calls: list[ToolCall] = []
    errors: list[str] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        key = "tool" if isinstance(item.get("tool"), str) else "name"
        name = item.get(key)
        if not isinstance(name, str):
            continue
        if name not in names:
            if key == "tool":  # {"name": ...} with an unknown name is just data
                errors.append(f"unknown tool {name!r}; the tools are: {', '.join(names)}")
            continue
        arguments, problem = _arguments(item)
        if arguments is None:
            errors.append(f"call of {name!r}: {problem}")
            continue
        calls.append(ToolCall(new_id(), name, arguments))
    if errors:
        return [], "; ".join(errors)
    if calls and len(calls) != len(items):
        return [], "every item of a list of calls must be a tool call object"
    return calls, None


def parse_tool_reply(
    text: str, tool_names: Collection[str], new_id: Callable[[], str] = _new_call_id
) -> ToolReply:
    """Read ``text`` as a plain answer, tool call(s), or a failed call attempt."""
    found = _candidate(text)
    if found is None:
        return ToolReply(text, prefix=text)
    start, body = found
    body = body.strip()
    try:
        value, _ = json.JSONDecoder().raw_decode(body)
    except json.JSONDecodeError as exc:
        if _looks_like_call(body, tool_names):
            return ToolReply(
                text,
                prefix=text[:start],
                error=f"the tool call is not valid JSON ({exc.msg}, line {exc.lineno} "
                f"column {exc.colno})",
            )
        return ToolReply(text, prefix=text)
    calls, error = _calls_from(value, tool_names, new_id)
    if error is not None:
        return ToolReply(text, prefix=text[:start], error=error)
    if not calls:
        return ToolReply(text, prefix=text)
    return ToolReply(text, calls, prefix=text[:start])


def repair_messages(reply: str, error: str) -> list[dict[str, Any]]:
    """The turn that re-asks the model after a malformed call: its reply, then the error."""
    return [
        {"role": "assistant", "content": reply},
        {
            "role": "user",
            "content": f"Your tool call could not be used: {error}. Reply again with only "
            f"the JSON object {TOOL_CALL_FORMAT} and no other text.",
        },
    ]
