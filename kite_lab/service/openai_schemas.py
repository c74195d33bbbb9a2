"""The OpenAI wire shapes the gateway accepts and answers, as strict pydantic models.

Why strict, and why every field is declared: a client written for OpenAI must not be
told "200" for a parameter kite cannot honour. A field the gateway does not support
(``logprobs``, ``n: 2``, ``audio`` ...) is a 422 naming it, never silently dropped; a
string where a number belongs is a 422 too (no coercion). The same models document the
routes in /openapi.json, which schemathesis checks the service against.

(No ``from __future__ import annotations``: FastAPI reads these annotations at run time.)
"""

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "AssistantMessage",
    "ChatCompletion",
    "ChatCompletionRequest",
    "ChatMessageIn",
    "EmbeddingList",
    "EmbeddingRequest",
    "ModelCard",
    "ModelList",
    "OpenAIErrorResponse",
    "with_dimension",
]

#: tool and function names, as OpenAI restricts them
NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


#: a text with at least one non-space character (pydantic's pattern searches)
NonBlank = Annotated[str, Field(min_length=1, pattern=r"\S")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# -- request: content parts and messages ----------------------------------------------------


class TextPart(_Strict):
    type: Literal["text"]
    text: str


#: an http(s) URL, or a base64 data URL of an image (whole base64 quanta)
IMAGE_URL_PATTERN = (
    r"^(?:https?://\S+|data:image/(?:png|jpeg|gif|webp);base64,"
    r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?)$"
)


class ImageURL(_Strict):
    url: str = Field(
        ...,
        pattern=IMAGE_URL_PATTERN,
        description="an http(s) URL or a data:image/<png|jpeg|gif|webp>;base64,... URL",
    )
    detail: Literal["auto", "low", "high"] | None = Field(
        None, description="accepted; providers choose the resolution themselves"
    )


class ImagePartIn(_Strict):
    type: Literal["image_url"]
    image_url: ImageURL


UserPart = Annotated[TextPart | ImagePartIn, Field(discriminator="type")]


class SystemMessage(_Strict):
    role: Literal["system", "developer"]
    content: str | list[TextPart]
    name: str | None = None


class UserMessage(_Strict):
    role: Literal["user"]
    content: str | list[UserPart]
    name: str | None = None


class FunctionCallIn(_Strict):
    name: str = Field(..., pattern=NAME_PATTERN)
    arguments: str = Field(..., description="the arguments as JSON text")


class ToolCallIn(_Strict):
    id: str = Field(..., min_length=1)
    type: Literal["function"]
    function: FunctionCallIn


class AssistantMessage(_Strict):
    role: Literal["assistant"]
    content: str | list[TextPart] | None = None
    tool_calls: list[ToolCallIn] | None = None
    name: str | None = None
    refusal: str | None = None


class ToolMessage(_Strict):
    role: Literal["tool"]
    content: str | list[TextPart]
    tool_call_id: str = Field(..., min_length=1)


ChatMessageIn = Annotated[
    SystemMessage | UserMessage | AssistantMessage | ToolMessage, Field(discriminator="role")
]


# -- request: tools and response formats -----------------------------------------------------


class FunctionDef(_Strict):
    name: str = Field(..., pattern=NAME_PATTERN)
    description: str | None = None
    parameters: dict[str, Any] | None = Field(None, description="JSON schema of the arguments")
    strict: bool | None = None


class ToolDef(_Strict):
    type: Literal["function"]
    function: FunctionDef


class NamedFunction(_Strict):
    name: str = Field(..., pattern=NAME_PATTERN)


class NamedToolChoice(_Strict):
    type: Literal["function"]
    function: NamedFunction


class JSONSchemaSpec(_Strict):
    name: str = Field(..., pattern=NAME_PATTERN)
    description: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema", description="a JSON schema")
    strict: bool | None = None

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)


class TextFormat(_Strict):
    type: Literal["text"]


class JSONObjectFormat(_Strict):
    type: Literal["json_object"]


class JSONSchemaFormat(_Strict):
    type: Literal["json_schema"]
    json_schema: JSONSchemaSpec


ResponseFormat = Annotated[
    TextFormat | JSONObjectFormat | JSONSchemaFormat, Field(discriminator="type")
]


class StreamOptions(_Strict):
    include_usage: bool | None = None


class ChatCompletionRequest(_Strict):
    """``POST /v1/chat/completions``: OpenAI's request; unsupported fields are a 422."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            # "required" or a named tool needs tools to choose from ("auto"/"none": no-op)
            "if": {
                "required": ["tool_choice"],
                "properties": {
                    "tool_choice": {"anyOf": [{"const": "required"}, {"type": "object"}]}
                },
            },
            "then": {"required": ["tools"], "properties": {"tools": {"type": "array"}}},
            "not": {"required": ["max_tokens", "max_completion_tokens"]},
        },
    )

    model: str = Field(
        ...,
        min_length=1,
        max_length=200,
        description="a kite model id (provider/model, a bare model of LLM_PROVIDER) or an "
        "alias (KITE_MODEL_ALIASES); GET /v1/models lists them",
        examples=["openai/gpt-4o-mini"],
    )
    messages: list[ChatMessageIn] = Field(..., min_length=1, max_length=500)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, gt=0, le=1_000_000)
    max_completion_tokens: int | None = Field(None, gt=0, le=1_000_000)
    stop: str | Annotated[list[str], Field(max_length=4)] | None = Field(
        None, description="up to 4 stop sequences"
    )
    seed: int | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    user: str | None = Field(
        None, max_length=256, description="accepted for compatibility; not sent to providers"
    )
    n: Literal[1] | None = Field(None, description="only 1: kite answers one choice")
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    tools: list[ToolDef] | None = Field(None, min_length=1, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = Field(
        None, description="only with openai models (others: 422)"
    )
    response_format: ResponseFormat | None = None

    @field_validator("max_tokens", "max_completion_tokens", "seed", mode="before")
    @classmethod
    def _integral_float(cls, value: Any) -> Any:
        return _integral(value)


def _dimension_in_schema(schema: dict[str, Any], cls: type) -> None:
    """Document the app's embedding model names and the one size its vectors have."""
    size = cls.dimension  # type: ignore[attr-defined]
    names = cls.served  # type: ignore[attr-defined]
    if names:
        schema.get("properties", {}).get("model", {})["enum"] = list(names)
    schema.get("properties", {})["dimensions"] = {
        "anyOf": [{"type": "integer", "const": size}, {"type": "null"}],
        "default": None,
        "description": f"only {size} (VECTOR_DIMENSION); omit it",
    }


class EmbeddingRequest(_Strict):
    """``POST /v1/embeddings``: text in, vectors of the configured embedding model out.

    ``dimension`` is the app's VECTOR_DIMENSION (``with_dimension`` makes the per-app
    subclass, so the OpenAPI schema says which ``dimensions`` is accepted)."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_dimension_in_schema)
    dimension: ClassVar[int] = 384
    served: ClassVar[tuple[str, ...]] = ()

    model: str = Field(
        ...,
        min_length=1,
        max_length=200,
        description="the configured EMBEDDING_MODEL (also as provider/model); "
        "GET /v1/models lists it; another name is a 404",
    )
    input: NonBlank | Annotated[list[NonBlank], Field(min_length=1, max_length=2048)] = Field(
        ..., description="a text or up to 2048 texts (each non-blank)"
    )
    encoding_format: Literal["float", "base64"] | None = "float"
    dimensions: int | None = Field(None, gt=0, description="must equal the model's size")
    user: str | None = Field(None, max_length=256)

    @field_validator("dimensions", mode="before")
    @classmethod
    def _one_size(cls, value: Any) -> Any:
        value = _integral(value)
        if isinstance(value, int) and not isinstance(value, bool) and value != cls.dimension:
            raise ValueError(
                f"this gateway's embedding model returns {cls.dimension}-dimensional vectors "
                "(VECTOR_DIMENSION); omit dimensions"
            )
        return value


def with_dimension(
    model: type[EmbeddingRequest], size: int, served: tuple[str, ...] = ()
) -> type[EmbeddingRequest]:
    """A subclass of ``model`` for an app whose embedding model (names ``served``) returns
    ``size`` numbers per vector: the OpenAPI schema then names both."""
    attrs = {"dimension": size, "served": served, "__module__": model.__module__}
    return type(model.__name__, (model,), attrs)


def _integral(value: Any) -> Any:
    """JSON Schema's ``integer`` includes 1.0: take it as 1 (still not "1" or 1.5)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# -- responses (documented; the handlers build plain dicts of these shapes) ---------------------


class FunctionCallOut(BaseModel):
    name: str
    arguments: str


class ToolCallOut(BaseModel):
    id: str
    type: Literal["function"]
    function: FunctionCallOut


class MessageOut(BaseModel):
    role: Literal["assistant"]
    content: str | None
    tool_calls: list[ToolCallOut] | None = None
    refusal: str | None = None


class Choice(BaseModel):
    index: int
    message: MessageOut
    finish_reason: str | None
    logprobs: None = None


class UsageOut(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str = Field(..., description="provider/model that answered (a fallback, maybe)")
    choices: list[Choice]
    usage: UsageOut
    system_fingerprint: str | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    kite_target: str | None = Field(None, description="what an alias stands for")
    kite_kind: Literal["chat", "embedding"] = "chat"


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[ModelCard]


class EmbeddingItem(BaseModel):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str = Field(..., description="floats, or base64 of float32 LE")


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(BaseModel):
    object: Literal["list"]
    data: list[EmbeddingItem]
    model: str
    usage: EmbeddingUsage


class OpenAIError(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None
    request_id: str | None = None


class OpenAIErrorResponse(BaseModel):
    error: OpenAIError
