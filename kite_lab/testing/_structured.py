"""Structured-output and image requests, as the fake server sees them.

Why here: a fake that answered ``response_format: json_schema`` (OpenAI) or a forced tool
(Anthropic) with "Echo: ..." would make every structured test script its replies. Instead
the server reads the schema a request asks for and, when nothing is scripted, answers a
value built to fit it (``sample_for_schema``). Image parts are decoded from either wire
format into ``SeenImage`` so tests can check the bytes arrived intact.

Standard library only, like the rest of ``kite_lab.testing``.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

__all__ = [
    "SeenImage",
    "forced_tool",
    "image_problem",
    "request_images",
    "requested_schema",
    "sample_for_schema",
]

ANTHROPIC_IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")


@dataclass(frozen=True)
class SeenImage:
    """One image part of a request: decoded bytes (base64/data URL) or the URL sent."""

    wire: str
    media_type: str | None
    data: bytes | None
    url: str | None


def forced_tool(body: Any) -> dict[str, Any] | None:
    """The Anthropic tool a request forces (``tool_choice: {"type": "tool"}``), if any."""
    if not isinstance(body, dict):
        return None
    choice = body.get("tool_choice")
    if not isinstance(choice, dict) or choice.get("type") != "tool":
        return None
    for tool in body.get("tools") or ():
        if isinstance(tool, dict) and tool.get("name") == choice.get("name"):
            return tool
    return None


def requested_schema(body: Any, wire: str) -> dict[str, Any] | None:
    """The JSON schema the answer must fit: OpenAI ``response_format`` json_schema, a
    json_object request whose system prompt ends with a schema, or Anthropic's forced
    tool's ``input_schema``."""
    if not isinstance(body, dict):
        return None
    if wire == "anthropic":
        tool = forced_tool(body)
        schema = tool.get("input_schema") if tool else None
        return schema if isinstance(schema, dict) else None
    fmt = body.get("response_format")
    if not isinstance(fmt, dict):
        return None
    if fmt.get("type") == "json_schema":
        inner = fmt.get("json_schema")
        schema = inner.get("schema") if isinstance(inner, dict) else None
        return schema if isinstance(schema, dict) else {}
    if fmt.get("type") == "json_object":
        return _schema_in_prompt(body.get("messages")) or {"type": "object"}
    return None


def _schema_in_prompt(messages: Any) -> dict[str, Any] | None:
    for message in messages if isinstance(messages, list) else ():
        content = message.get("content") if isinstance(message, dict) else None
        if message.get("role") != "system" or not isinstance(content, str):
            continue
        for line in reversed(content.splitlines()):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict) and ("type" in value or "properties" in value):
                return value
    return None


def sample_for_schema(schema: Any, defs: dict[str, Any] | None = None, depth: int = 0) -> Any:
    """A small value that fits ``schema`` (types, enums, consts, required keys, bounds)."""
    if not isinstance(schema, dict) or depth > 12:
        return None
    defs = {**(defs or {}), **schema.get("$defs", {}), **schema.get("definitions", {})}
    if "$ref" in schema:
        target = defs.get(str(schema["$ref"]).rsplit("/", 1)[-1])
        return sample_for_schema(target, defs, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf"):
        options = [o for o in schema.get(key, ()) if isinstance(o, dict)]
        if options:
            non_null = [o for o in options if o.get("type") != "null"] or options
            return sample_for_schema(non_null[0], defs, depth + 1)
    if schema.get("allOf"):
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            merged.update(part if isinstance(part, dict) else {})
        return sample_for_schema(merged, defs, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        props = schema.get("properties") or {}
        return {name: sample_for_schema(sub, defs, depth + 1) for name, sub in props.items()}
    if kind == "array":
        count = max(1, int(schema.get("minItems", 1)))
        return [sample_for_schema(schema.get("items", {}), defs, depth + 1) for _ in range(count)]
    if kind == "string":
        return _string(schema)
    if kind == "integer":
        return int(schema.get("minimum", schema.get("exclusiveMinimum", -1) + 1))
    if kind == "number":
        return float(schema.get("minimum", 0.5))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return "example"


def _string(schema: dict[str, Any]) -> str:
    formats = {"date": "2025-01-01", "date-time": "2025-01-01T00:00:00Z", "email": "a@b.co"}
    if schema.get("format") in formats:
        return formats[schema["format"]]
    text = "example"
    low = int(schema.get("minLength", 0))
    if len(text) < low:
        text = text + "x" * (low - len(text))
    high = schema.get("maxLength")
    return text[: int(high)] if isinstance(high, int) else text


# -- images ------------------------------------------------------------------------------


def request_images(body: Any, wire: str) -> list[SeenImage]:
    """Every image part of the request's messages, decoded."""
    seen: list[SeenImage] = []
    messages = body.get("messages") if isinstance(body, dict) else None
    for message in messages if isinstance(messages, list) else ():
        content = message.get("content") if isinstance(message, dict) else None
        for part in content if isinstance(content, list) else ():
            if not isinstance(part, dict):
                continue
            if wire == "openai" and part.get("type") == "image_url":
                url = (part.get("image_url") or {}).get("url")
                seen.append(_from_url(str(url)))
            elif wire == "anthropic" and part.get("type") == "image":
                source = part.get("source") or {}
                if source.get("type") == "base64":
                    data = _b64(source.get("data"))
                    seen.append(SeenImage(wire, source.get("media_type"), data, None))
                else:
                    seen.append(SeenImage(wire, None, None, source.get("url")))
    return seen


def image_problem(body: Any, wire: str) -> str | None:
    """Why the real API would reject the request's image parts (a 400), else None."""
    messages = body.get("messages") if isinstance(body, dict) else None
    for message in messages if isinstance(messages, list) else ():
        content = message.get("content") if isinstance(message, dict) else None
        for part in content if isinstance(content, list) else ():
            if not isinstance(part, dict):
                continue
            if wire == "openai" and part.get("type") == "image_url":
                url = (part.get("image_url") or {}).get("url")
                if not isinstance(url, str):
                    return "image_url.url must be a string"
                if url.startswith("data:") and _from_url(url).data is None:
                    return "Invalid image data URL."
            elif wire == "anthropic" and part.get("type") == "image":
                source = part.get("source") or {}
                if source.get("type") == "base64":
                    if source.get("media_type") not in ANTHROPIC_IMAGE_TYPES:
                        return f"image.source.media_type: must be one of {ANTHROPIC_IMAGE_TYPES}"
                    if _b64(source.get("data")) is None:
                        return "image.source.data: invalid base64"
                elif source.get("type") != "url" or not isinstance(source.get("url"), str):
                    return "image.source: expected a base64 or url source"
    return None


def _from_url(url: str) -> SeenImage:
    if url.startswith("data:"):
        head, _, payload = url.partition(",")
        media_type = head[len("data:") :].split(";", 1)[0] or None
        return SeenImage("openai", media_type, _b64(payload), None)
    return SeenImage("openai", None, None, url)


def _b64(value: Any) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
