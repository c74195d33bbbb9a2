"""OpenAI and the OpenAI-compatible providers (Groq, Ollama), through the openai SDK.

SDK retries are off by default (LLM_MAX_RETRIES=0): one logical call is one circuit
breaker event, and retrying is the caller's decision, not hidden inside the SDK.

Structured output (``schema=``): ``response_format`` ``json_schema`` (strict when the model
and the schema allow it); models without it get ``json_object`` plus the schema in the
system prompt. Ollama's OpenAI endpoint turns ``json_schema`` into its native
``format=<schema>``. Images are ``image_url`` content parts (a data URL or the http URL).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from pydantic import Field

from kite_lab.core.errors import ConfigError, MissingAPIKey
from kite_lab.core.runner import PerLoop
from kite_lab.core.types import Completion, StreamChunk, ToolCall, Usage
from kite_lab.providers.base import (
    BaseOptions,
    Capabilities,
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


def to_openai_messages(
    request: LLMRequest, extra_system: str | None = None
) -> list[dict[str, Any]]:
    system, rest = split_system(request.messages, request.system)
    if extra_system:
        system = f"{system}\n\n{extra_system}" if system else extra_system
    out: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    for message in rest:
        item: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.images:
            parts: list[dict[str, Any]] = [{"type": "text", "text": message.content}]
            parts += [
                {"type": "image_url", "image_url": {"url": image.data_url()}}
                for image in message.images
            ]
            item["content"] = parts
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


#: how a model is asked for structured output
StructuredMode = str  # "strict" | "json_schema" | "json_object"


def response_format(request: LLMRequest, mode: StructuredMode) -> dict[str, Any]:
    """The ``response_format`` for ``request.schema`` in ``mode``."""
    schema = request.schema
    assert schema is not None
    if mode == "json_object":
        return {"type": "json_object"}
    strict = mode == "strict" and schema.strict_schema is not None
    body = schema.strict_schema if strict and schema.strict_schema else schema.json_schema
    return {
        "type": "json_schema",
        "json_schema": {"name": schema.name, "schema": body, "strict": strict},
    }


_OPENAI_LEGACY = re.compile(r"^(gpt-3\.5|gpt-4(-\d{4})?$|gpt-4-32k|gpt-4-turbo|gpt-4-\d{4})")
_OPENAI_TEXT_ONLY = re.compile(r"^(gpt-3\.5|gpt-4(-\d{4})?$|gpt-4-32k|o1-mini|o3-mini)")


def _tool_choice(choice: str | dict[str, Any] | None) -> Any:
    if isinstance(choice, dict) and "name" in choice:
        return {"type": "function", "function": {"name": choice["name"]}}
    return choice


class OpenAIProvider(LLMProvider):
    name: ClassVar[str] = "openai"
    key_env: ClassVar[str | None] = "OPENAI_API_KEY"
    default_model: ClassVar[str] = "gpt-4o-mini"
    capabilities: ClassVar[Capabilities] = Capabilities(vision=True)
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
            http_client=_http_client(openai, self.settings.openai_http_backend),
            api_key=self._api_key,
            base_url=self._base_url(),
            max_retries=self.settings.llm_max_retries,
            timeout=self.settings.llm_timeout,
        )

    def supports_images(self, model: str) -> bool:
        return not _OPENAI_TEXT_ONLY.match(model)

    def structured_mode(self, model: str) -> StructuredMode:
        """How ``model`` is asked for a schema: strict json_schema unless it predates it."""
        return "json_object" if _OPENAI_LEGACY.match(model) else "strict"

    # -- the calls ------------------------------------------------------------------
    def _payload(self, request: LLMRequest) -> dict[str, Any]:
        instruction, answer_format = None, None
        if request.schema is not None:
            mode = self.structured_mode(request.model)
            answer_format = response_format(request, mode)
            if mode == "json_object":  # the schema travels in the prompt (and says "JSON")
                instruction = request.schema.instruction()
        payload: dict[str, Any] = {
            "model": request.model,
            "messages": to_openai_messages(request, instruction),
            **request.params,
        }
        if answer_format is not None:
            payload["response_format"] = answer_format
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


def _http_client(openai: Any, backend: str) -> Any:
    """OPENAI_HTTP_BACKEND: None (the SDK's httpx client) or its aiohttp transport, which
    holds many concurrent calls (ai.map) with less overhead per call."""
    if backend != "aiohttp":
        return None
    try:
        return openai.DefaultAioHttpClient()
    except (AttributeError, RuntimeError, ImportError) as exc:
        raise ConfigError(
            "OPENAI_HTTP_BACKEND=aiohttp needs the aiohttp transport: pip install "
            f"'kite-lab[aiohttp]' (or 'openai[aiohttp]'), or set it to httpx ({exc})"
        ) from None


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

    def supports_images(self, model: str) -> bool:
        return "llama-4" in model or "vision" in model

    def structured_mode(self, model: str) -> StructuredMode:
        # Groq: json_schema on its newer models, strict only on gpt-oss; else json_object
        if "gpt-oss" in model:
            return "strict"
        if any(name in model for name in ("llama-4", "kimi-k2", "qwen3")):
            return "json_schema"
        return "json_object"


class OllamaProvider(OpenAIProvider):
    """A local Ollama server through its OpenAI-compatible API (OLLAMA_BASE_URL); no key."""

    name: ClassVar[str] = "ollama"
    key_env: ClassVar[str | None] = None
    default_model: ClassVar[str] = "llama3.2"

    def _key(self) -> str:
        return "ollama"  # the SDK insists on a key; Ollama ignores it

    def _base_url(self) -> str | None:
        return self.settings.ollama_base_url

    def supports_images(self, model: str) -> bool:
        return any(name in model for name in _OLLAMA_VISION)

    def structured_mode(self, model: str) -> StructuredMode:
        return "json_schema"  # Ollama's /v1 endpoint sends it on as format=<schema>


#: Ollama model families that take images (the rest are text only)
_OLLAMA_VISION = (
    "llava", "bakllava", "vision", "moondream", "gemma3", "qwen2.5vl", "qwen2.5-vl",
    "minicpm-v", "llama4", "mistral-small3", "granite3.2-vision",
)
