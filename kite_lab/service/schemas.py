"""Request and response models of the HTTP API (pydantic, strict).

Strict on purpose: an unknown field, a string where a number belongs or a prompt over
KITE_MAX_PROMPT_CHARS is a 422 naming the field, never a silent coercion. The prompt
limit is a class variable; ``with_prompt_limit`` makes per-app subclasses so the limit
comes from settings while the OpenAPI schema still shows it as ``maxLength``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "AgentInfo",
    "AgentRunRequest",
    "AgentRunResponse",
    "ChatMessage",
    "ChatRequest",
    "CompletionRequest",
    "CompletionResponse",
    "ErrorBody",
    "ErrorResponse",
    "HealthResponse",
    "UsageBody",
    "with_prompt_limit",
]

DEFAULT_PROMPT_LIMIT = 10_000


_M = TypeVar("_M", bound=BaseModel)


#: "not blank" as a JSON-schema pattern, for the text the validators below ``strip()``
NOT_BLANK = r"\S"


def _limit_in_schema(field: str) -> Any:
    """Show the class's prompt limit as ``maxLength`` (and "not blank") in the schema."""

    def extra(schema: dict[str, Any], cls: type) -> None:
        prop = schema.get("properties", {}).get(field)
        if isinstance(prop, dict):
            prop["maxLength"] = cls.max_prompt_chars  # type: ignore[attr-defined]
            prop["pattern"] = NOT_BLANK

    return extra


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Params(_Strict):
    model: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="provider/model (e.g. openai/gpt-4o-mini) or a model of LLM_PROVIDER",
    )
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, gt=0, le=1_000_000)
    session_id: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9._:\-]+$",
        description="keep a conversation: earlier turns are sent, this one is stored",
    )
    stream: bool = Field(False, description="answer as server-sent events")

    @field_validator("max_tokens", mode="before")
    @classmethod
    def _integral_float(cls, value: Any) -> Any:
        """JSON Schema's ``integer`` includes 1.0: take it as 1 (still not "1" or 1.5)."""
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value


class CompletionRequest(_Params):
    """``POST /complete``."""

    model_config = ConfigDict(json_schema_extra=_limit_in_schema("prompt"))
    max_prompt_chars: ClassVar[int] = DEFAULT_PROMPT_LIMIT

    prompt: str = Field(..., min_length=1, description="limit: KITE_MAX_PROMPT_CHARS")
    system: str | None = Field(None, description="system prompt (counts toward the limit)")

    @model_validator(mode="after")
    def _check_length(self) -> CompletionRequest:
        if not self.prompt.strip():
            raise ValueError("prompt is blank; send the text for the model")
        _check_limit(len(self.prompt) + len(self.system or ""), self.max_prompt_chars, "prompt")
        return self


#: the JSON-schema form of "at least one non-blank user message" (checked below too)
_USER_MESSAGE: dict[str, Any] = {
    "type": "object",
    "properties": {"role": {"const": "user"}, "content": {"type": "string", "pattern": NOT_BLANK}},
    "required": ["role", "content"],
}


class ChatMessage(_Strict):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(_Params):
    """``POST /chat``: an OpenAI-style conversation."""

    max_prompt_chars: ClassVar[int] = DEFAULT_PROMPT_LIMIT

    messages: list[ChatMessage] = Field(
        ...,
        min_length=1,
        max_length=500,
        description="at least one user message with non-blank content",
        json_schema_extra={"contains": _USER_MESSAGE},
    )

    @model_validator(mode="after")
    def _check_length(self) -> ChatRequest:
        total = sum(len(m.content) for m in self.messages)
        _check_limit(total, self.max_prompt_chars, "messages")
        if not any(m.content.strip() for m in self.messages if m.role == "user"):
            raise ValueError("messages need at least one non-empty user message")
        return self


class AgentRunRequest(_Strict):
    """``POST /agents/{name}/run``."""

    model_config = ConfigDict(json_schema_extra=_limit_in_schema("input"))
    max_prompt_chars: ClassVar[int] = DEFAULT_PROMPT_LIMIT

    input: str = Field(..., min_length=1, description="limit: KITE_MAX_PROMPT_CHARS")
    session_id: str | None = Field(
        None, min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:\-]+$"
    )

    @model_validator(mode="after")
    def _check_length(self) -> AgentRunRequest:
        if not self.input.strip():
            raise ValueError("input is blank; send the task or question for the agent")
        _check_limit(len(self.input), self.max_prompt_chars, "input")
        return self


def _check_limit(size: int, limit: int, what: str) -> None:
    if size > limit:
        raise ValueError(
            f"{what} is {size} characters; the limit is {limit} (KITE_MAX_PROMPT_CHARS)"
        )


def with_prompt_limit(model: type[_M], limit: int) -> type[_M]:
    """A subclass of ``model`` enforcing ``limit`` characters (same name in the schema)."""
    return type(
        model.__name__, (model,), {"max_prompt_chars": limit, "__module__": model.__module__}
    )


# -- responses ----------------------------------------------------------------------


class UsageBody(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CompletionResponse(BaseModel):
    text: str
    provider: str
    model: str
    usage: UsageBody
    cost_usd: float | None = Field(None, description="None when the model has no price entry")
    latency_s: float
    finish_reason: str | None = None
    cached: bool = False
    session_id: str | None = None
    request_id: str | None = None


class AgentRunResponse(BaseModel):
    model_config = ConfigDict(extra="allow")

    agent: str
    response: str
    success: bool
    iterations: int = 0
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost_usd: float | None = None
    latency_s: float = 0.0
    error: str | None = None
    session_id: str | None = None
    request_id: str | None = None


class AgentInfo(BaseModel):
    name: str
    type: str | None = None
    tools: list[str] = Field(default_factory=list)


class HealthResponse(BaseModel):
    status: Literal["healthy", "degraded", "unhealthy"]
    circuit_breaker: str
    llm_provider: str | None
    model: str | None
    redis: Literal["ok", "down", "unused"]
    postgres: Literal["ok", "down", "unused"]
    kill_switch: bool
    version: str
    reasons: list[str] = Field(default_factory=list, description="why not healthy")


class ErrorBody(BaseModel):
    type: str
    message: str
    request_id: str | None = None
    details: Any = None


class ErrorResponse(BaseModel):
    error: ErrorBody
