"""Anthropic's Messages API through the anthropic SDK.

Differences from OpenAI handled here: the system prompt is a separate field, tool
results are ``tool_result`` blocks inside a user turn, ``max_tokens`` is required
(default 1024), and ``stop`` is called ``stop_sequences``.

Structured output (``schema=``): Anthropic has no response format, so the schema becomes
one tool whose ``input_schema`` it is, and ``tool_choice`` forces that tool; its input is
the answer, returned (and streamed) as the completion's JSON text. Images are ``image``
blocks with a base64 source (or a url source for http URLs), placed before the text.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from pydantic import Field

from kite_lab.core.errors import MissingAPIKey
from kite_lab.core.runner import PerLoop
from kite_lab.core.types import Completion, ImagePart, StreamChunk, ToolCall, Usage
from kite_lab.providers.base import (
    BaseOptions,
    Capabilities,
    LLMProvider,
    LLMRequest,
    fit_to_signature,
    split_system,
)
from kite_lab.providers.openai_compat import parse_tool_arguments
from kite_lab.providers.sdk_errors import map_sdk_error

__all__ = ["AnthropicProvider"]

DEFAULT_MAX_TOKENS = 1024


class AnthropicOptions(BaseOptions):
    temperature: float | None = Field(None, ge=0, le=1)
    top_k: int | None = Field(None, gt=0)
    metadata: dict[str, Any] | None = None


def _image_block(image: ImagePart) -> dict[str, Any]:
    if image.url is not None:
        return {"type": "image", "source": {"type": "url", "url": image.url}}
    source = {"type": "base64", "media_type": image.media_type, "data": image.base64()}
    return {"type": "image", "source": source}


def to_anthropic_messages(request: LLMRequest) -> tuple[str | None, list[dict[str, Any]]]:
    system, rest = split_system(request.messages, request.system)
    out: list[dict[str, Any]] = []
    for message in rest:
        if message.role == "tool":
            block = {
                "type": "tool_result",
                "tool_use_id": message.tool_call_id,
                "content": message.content,
            }
            # consecutive tool results belong in one user turn
            if (
                out
                and out[-1]["role"] == "user"
                and isinstance(out[-1]["content"], list)
                and all(b.get("type") == "tool_result" for b in out[-1]["content"])
            ):
                out[-1]["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
        elif message.tool_calls:
            blocks: list[dict[str, Any]] = []
            if message.content:
                blocks.append({"type": "text", "text": message.content})
            blocks += [
                {"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments}
                for c in message.tool_calls
            ]
            out.append({"role": "assistant", "content": blocks})
        elif message.images:
            blocks = [_image_block(image) for image in message.images]
            blocks.append({"type": "text", "text": message.content})
            out.append({"role": message.role, "content": blocks})
        else:
            out.append({"role": message.role, "content": message.content})
    return system, out


def _is_answer(request: LLMRequest, tool: str) -> bool:
    """Whether a tool_use block is the forced tool carrying a ``schema=`` answer."""
    return request.schema is not None and tool == request.schema.name


def _finish(request: LLMRequest, reason: str | None) -> str | None:
    """A ``schema=`` answer ends its turn; the forced tool is how it was asked, not a call."""
    return "end_turn" if request.schema is not None and reason == "tool_use" else reason


def _answer_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _tool_choice(choice: str | dict[str, Any] | None) -> dict[str, Any] | None:
    if choice is None:
        return None
    if isinstance(choice, dict):
        return {"type": "tool", "name": choice["name"]} if "name" in choice else choice
    return {
        "auto": {"type": "auto"},
        "required": {"type": "any"},
        "any": {"type": "any"},
        "none": {"type": "none"},
    }[choice]


class AnthropicProvider(LLMProvider):
    name: ClassVar[str] = "anthropic"
    key_env: ClassVar[str | None] = "ANTHROPIC_API_KEY"
    default_model: ClassVar[str] = "claude-3-5-sonnet-20241022"
    capabilities: ClassVar[Capabilities] = Capabilities(system_prompt="field", vision=True)
    Options = AnthropicOptions

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        secret = settings.anthropic_api_key
        if secret is None or not secret.get_secret_value():
            raise MissingAPIKey(self.name, "ANTHROPIC_API_KEY")
        self._api_key = secret.get_secret_value()
        self._clients = PerLoop(self._make_client)

    def supports_images(self, model: str) -> bool:
        return not model.startswith(("claude-2", "claude-instant"))

    def load_sdk(self) -> None:
        # the package, and the messages resource + response types its first call imports
        import anthropic
        import anthropic.resources.messages
        import anthropic.types  # noqa: F401

    def _make_client(self) -> Any:
        import anthropic

        return anthropic.AsyncAnthropic(
            api_key=self._api_key,
            base_url=self.settings.anthropic_base_url,
            max_retries=self.settings.llm_max_retries,
            timeout=self.settings.llm_timeout,
        )

    def _payload(self, request: LLMRequest) -> dict[str, Any]:
        system, messages = to_anthropic_messages(request)
        params = dict(request.params)
        if "stop" in params:
            params["stop_sequences"] = params.pop("stop")
        params.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
        payload: dict[str, Any] = {"model": request.model, "messages": messages, **params}
        if system:
            payload["system"] = system
        if request.tools:
            payload["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.parameters}
                for t in request.tools
            ]
            choice = _tool_choice(request.tool_choice)
            if choice is not None:
                payload["tool_choice"] = choice
        if request.schema is not None:  # the answer is the forced tool's input
            payload["tools"] = [
                {
                    "name": request.schema.name,
                    "description": "Give the answer in this structure.",
                    "input_schema": request.schema.json_schema,
                }
            ]
            payload["tool_choice"] = {"type": "tool", "name": request.schema.name}
        return payload

    def _error(self, exc: BaseException, *, parsing: bool = False) -> BaseException:
        import anthropic

        return map_sdk_error(exc, self.name, anthropic, parsing=parsing) or exc

    async def _create(self, payload: dict[str, Any]) -> Any:
        create = self._client().messages.create
        try:
            return await create(**fit_to_signature(create, payload))
        except Exception as exc:
            raise self._error(exc) from exc

    async def generate(self, request: LLMRequest) -> Completion:
        response = await self._create(self._payload(request))
        try:
            text, calls = [], []
            for block in response.content:
                if block.type == "text":
                    text.append(block.text)
                elif block.type == "tool_use" and _is_answer(request, block.name):
                    text.append(_answer_text(block.input))
                elif block.type == "tool_use":
                    arguments = block.input if isinstance(block.input, dict) else {}
                    raw = None if isinstance(block.input, dict) else json.dumps(block.input)
                    calls.append(ToolCall(block.id, block.name, arguments, raw))
            return Completion(
                text="".join(text),
                provider=self.name,
                model=request.model,
                usage=Usage(response.usage.input_tokens, response.usage.output_tokens),
                tool_calls=calls,
                finish_reason=_finish(request, response.stop_reason),
            )
        except Exception as exc:
            raise self._error(exc, parsing=True) from exc

    async def stream(self, request: LLMRequest) -> AsyncIterator[StreamChunk]:
        payload = self._payload(request)
        payload["stream"] = True
        text: list[str] = []
        blocks: dict[int, dict[str, str]] = {}
        answer_blocks: set[int] = set()
        input_tokens = output_tokens = 0
        finish = None
        events = await self._create(payload)
        try:
            async for event in events:
                kind = event.type
                if kind == "message_start":
                    input_tokens = event.message.usage.input_tokens
                    output_tokens = event.message.usage.output_tokens or 0
                elif kind == "content_block_start" and event.content_block.type == "tool_use":
                    block = event.content_block
                    if _is_answer(request, block.name):
                        answer_blocks.add(event.index)
                    else:
                        blocks[event.index] = {"id": block.id, "name": block.name, "json": ""}
                elif kind == "content_block_delta":
                    delta = event.delta
                    if delta.type == "text_delta":
                        text.append(delta.text)
                        yield StreamChunk(text=delta.text)
                    elif delta.type == "input_json_delta" and event.index in answer_blocks:
                        text.append(delta.partial_json)  # the structured answer, as it comes
                        yield StreamChunk(text=delta.partial_json)
                    elif delta.type == "input_json_delta":
                        blocks[event.index]["json"] += delta.partial_json
                elif kind == "message_delta":
                    finish = event.delta.stop_reason or finish
                    output_tokens = event.usage.output_tokens or output_tokens
        except Exception as exc:
            raise self._error(exc, parsing=True) from exc
        calls = []
        for _, block in sorted(blocks.items()):
            arguments, raw = parse_tool_arguments(block["json"] or "{}")
            calls.append(ToolCall(block["id"], block["name"], arguments, raw))
        yield StreamChunk(
            completion=Completion(
                text="".join(text),
                provider=self.name,
                model=request.model,
                usage=Usage(input_tokens, output_tokens),
                tool_calls=calls,
                finish_reason=_finish(request, finish),
            )
        )
