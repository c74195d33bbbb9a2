"""OpenAI and the OpenAI-compatible providers (Groq, Ollama), through the openai SDK.

SDK retries are off by default (LLM_MAX_RETRIES=0): one logical call is one circuit
breaker event, and retrying is the caller's decision, not hidden inside the SDK.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from pydantic import Field

from kite_lab.core.errors import MissingAPIKey
from kite_lab.core.runner import PerLoop
from kite_lab.core.types import Completion, StreamChunk, ToolCall, Usage
from kite_lab.providers.base import (
    BaseOptions,
    LLMProvider,
    LLMRequest,
    fit_to_signature,
    split_system,
)
from kite_lab.providers.sdk_errors import map_sdk_error

__all__ = ["GroqProvider", "OllamaProvider", "OpenAIProvider", "parse_tool_arguments"]


class OpenAIOptions(BaseOptions):
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    seed: int | None = None
    response_format: dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    max_completion_tokens: int | None = Field(None, gt=0)
    reasoning_effort: str | None = None
    user: str | None = None


def parse_tool_arguments(raw: str | None) -> tuple[dict[str, Any], str | None]:
    """Arguments as a dict; the raw text too when it is not a JSON object (for repair)."""
    if not raw:
        return {}, None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return {}, raw
    return (value, None) if isinstance(value, dict) else ({}, raw)


def to_openai_messages(request: LLMRequest) -> list[dict[str, Any]]:
    system, rest = split_system(request.messages, request.system)
    out: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    for message in rest:
        item: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.name:
            item["name"] = message.name
        if message.role == "tool":
            item["tool_call_id"] = message.tool_call_id
        if message.tool_calls:
            item["content"] = message.content or None
            item["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {
                        "name": call.name,
                        "arguments": call.raw_arguments or json.dumps(call.arguments),
                    },
                }
                for call in message.tool_calls
            ]
        out.append(item)
    return out


def _tool_choice(choice: str | dict[str, Any] | None) -> Any:
    if isinstance(choice, dict) and "name" in choice:
        return {"type": "function", "function": {"name": choice["name"]}}
    return choice


class OpenAIProvider(LLMProvider):
    name: ClassVar[str] = "openai"
    key_env: ClassVar[str | None] = "OPENAI_API_KEY"
    default_model: ClassVar[str] = "gpt-4o-mini"
    Options = OpenAIOptions

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self._api_key = self._key()
        self._clients = PerLoop(self._make_client)

    # -- configuration per compatible service ----------------------------------------
    def _key(self) -> str:
        secret = self.settings.openai_api_key
        if secret is None or not secret.get_secret_value():
            raise MissingAPIKey(self.name, "OPENAI_API_KEY")
        return secret.get_secret_value()

    def _base_url(self) -> str | None:
        return self.settings.openai_base_url

    def load_sdk(self) -> None:
        # the package, and the chat resource + response types its first call imports
        import openai
        import openai.resources.chat
        import openai.types.chat  # noqa: F401

    def _make_client(self) -> Any:
        import openai

        return openai.AsyncOpenAI(
            api_key=self._api_key,
            base_url=self._base_url(),
            max_retries=self.settings.llm_max_retries,
            timeout=self.settings.llm_timeout,
        )

    # -- the calls ------------------------------------------------------------------
    def _payload(self, request: LLMRequest) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": request.model,
            "messages": to_openai_messages(request),
            **request.params,
        }
        if request.tools:
            payload["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": t.parameters,
                    },
                }
                for t in request.tools
            ]
            if request.tool_choice is not None:
                payload["tool_choice"] = _tool_choice(request.tool_choice)
        return payload

    def _error(self, exc: BaseException, *, parsing: bool = False) -> BaseException:
        import openai

        return map_sdk_error(exc, self.name, openai, parsing=parsing) or exc

    async def _create(self, payload: dict[str, Any]) -> Any:
        create = self._client().chat.completions.create
        try:
            return await create(**fit_to_signature(create, payload))
        except Exception as exc:
            raise self._error(exc) from exc

    async def generate(self, request: LLMRequest) -> Completion:
        response = await self._create(self._payload(request))
        try:
            choice = response.choices[0]
            calls = []
            for call in choice.message.tool_calls or ():
                arguments, raw = parse_tool_arguments(call.function.arguments)
                calls.append(ToolCall(call.id, call.function.name, arguments, raw))
            usage = response.usage
            return Completion(
                text=choice.message.content or "",
                provider=self.name,
                model=request.model,
                usage=Usage(usage.prompt_tokens, usage.completion_tokens) if usage else Usage(),
                tool_calls=calls,
                finish_reason=choice.finish_reason,
            )
        except Exception as exc:
            raise self._error(exc, parsing=True) from exc

    async def stream(self, request: LLMRequest) -> AsyncIterator[StreamChunk]:
        payload = self._payload(request)
        payload["stream"] = True
        payload["stream_options"] = {"include_usage": True}
        text: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        usage, finish = Usage(), None
        events = await self._create(payload)
        try:
            async for event in events:
                if event.usage:
                    usage = Usage(event.usage.prompt_tokens, event.usage.completion_tokens)
                for choice in event.choices:
                    finish = choice.finish_reason or finish
                    delta = choice.delta
                    for call in delta.tool_calls or ():
                        slot = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                        slot["id"] = call.id or slot["id"]
                        if call.function is not None:
                            slot["name"] += call.function.name or ""
                            slot["arguments"] += call.function.arguments or ""
                    if delta.content:
                        text.append(delta.content)
                        yield StreamChunk(text=delta.content)
        except Exception as exc:
            raise self._error(exc, parsing=True) from exc
        tool_calls = []
        for _, slot in sorted(calls.items()):
            arguments, raw = parse_tool_arguments(slot["arguments"])
            tool_calls.append(ToolCall(slot["id"], slot["name"], arguments, raw))
        yield StreamChunk(
            completion=Completion(
                text="".join(text),
                provider=self.name,
                model=request.model,
                usage=usage,
                tool_calls=tool_calls,
                finish_reason=finish,
            )
        )


class GroqProvider(OpenAIProvider):
    """Groq's OpenAI-compatible endpoint (GROQ_BASE_URL)."""

    name: ClassVar[str] = "groq"
    key_env: ClassVar[str | None] = "GROQ_API_KEY"
    default_model: ClassVar[str] = "llama-3.3-70b-versatile"

    def _key(self) -> str:
        secret = self.settings.groq_api_key
        if secret is None or not secret.get_secret_value():
            raise MissingAPIKey(self.name, "GROQ_API_KEY")
        return secret.get_secret_value()

    def _base_url(self) -> str | None:
        return self.settings.groq_base_url


class OllamaProvider(OpenAIProvider):
    """A local Ollama server through its OpenAI-compatible API (OLLAMA_BASE_URL); no key."""

    name: ClassVar[str] = "ollama"
    key_env: ClassVar[str | None] = None
    default_model: ClassVar[str] = "llama3.2"

    def _key(self) -> str:
        return "ollama"  # the SDK insists on a key; Ollama ignores it

    def _base_url(self) -> str | None:
        return self.settings.ollama_base_url
