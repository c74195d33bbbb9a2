"""The OpenAI-compatible gateway: /v1/chat/completions, /v1/models, /v1/embeddings.

Any client written for OpenAI (the openai SDK with ``base_url``, LangChain, curl) gets
every model kite can call -- ``anthropic/claude-...``, ``local/...``, aliases -- behind
the service's own protections: bearer keys, per-key rate limits, Idempotency-Key,
graceful shutdown, metrics and JSON logs (the service middleware, as for /chat), plus
per-key budgets (``openai_budgets``) and fallbacks (``safety.fallbacks``). Every model
call goes through the same ``Kite`` facade as a notebook: cache, breaker, kill switch,
cost and events included.

Handlers are thin: validation is the pydantic models (``openai_schemas``), translation
is ``openai_translate``, streaming is ``openai_stream``, and every error leaves in
OpenAI's envelope (``openai_errors``). The answer names the model that answered in
``model`` and in the ``x-kite-model`` header.

(No ``from __future__ import annotations``: FastAPI reads the annotations at run time.)
"""

import asyncio
import base64
import logging
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from kite_lab.core.types import Completion, Usage
from kite_lab.safety.fallbacks import parse_fallbacks
from kite_lab.service.openai_budgets import KeyBudgets
from kite_lab.service.openai_errors import GatewayError, openai_error_for
from kite_lab.service.openai_models import ModelCatalog
from kite_lab.service.openai_schemas import (
    ChatCompletion,
    ChatCompletionRequest,
    EmbeddingList,
    EmbeddingRequest,
    ModelCard,
    ModelList,
    OpenAIErrorResponse,
    with_dimension,
)
from kite_lab.service.openai_stream import open_stream
from kite_lab.service.openai_translate import (
    accepts_factory,
    completion_body,
    model_header,
    new_completion_id,
    to_chat_call,
)

if TYPE_CHECKING:
    from kite_lab.providers.embeddings import EmbeddingProvider
    from kite_lab.service.state import ServiceState

__all__ = ["GATEWAY_ROUTES", "Gateway", "build_openai_router"]

log = logging.getLogger("kite_lab.service")

#: the POST routes KITE_RATE_LIMIT applies to (besides the service's own)
GATEWAY_ROUTES = ("/v1/chat/completions", "/v1/embeddings")
MAX_EMBEDDING_INPUTS = 2048

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": OpenAIErrorResponse, "description": text}
    for code, text in {
        400: "the body is not valid JSON",
        401: "missing or invalid API key",
        402: "the provider's quota is exhausted",
        404: "unknown model (GET /v1/models lists them)",
        409: "the same Idempotency-Key is still in flight",
        413: "request body too large",
        422: "invalid or unsupported parameter (error.param names it)",
        429: "rate limit or budget exceeded (Retry-After)",
        502: "the provider failed or answered something unusable",
        503: "circuit breaker open, kill switch active, or shutting down (Retry-After)",
        504: "the provider timed out",
    }.items()
}
_CHUNK_DATA = {
    "anyOf": [
        {"const": "[DONE]"},
        {
            "contentMediaType": "application/json",
            "contentSchema": {
                "type": "object",
                "description": "a chat.completion.chunk, or {error: {...}} (then no [DONE])",
            },
        },
    ]
}
_STREAMED: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The chat.completion as JSON; with `stream: true`, server-sent events: "
        "`data: {chat.completion.chunk}` ... `data: [DONE]`. A failure after the first event "
        'is `data: {"error": {...}}` and no `[DONE]`. Header `x-kite-model`: the model that '
        "answered (a fallback, maybe).",
        "content": {
            "text/event-stream": {
                "schema": {
                    "type": "object",
                    "required": ["data"],
                    "properties": {
                        "event": {"const": "message"},
                        "data": {"type": "string", **_CHUNK_DATA},
                    },
                },
                "example": 'data: {"object": "chat.completion.chunk", ...}\n\ndata: [DONE]\n\n',
            }
        },
        "headers": {"x-kite-model": {"schema": {"type": "string"}, "description": "who answered"}},
    }
}


class Gateway:
    """What the routes share: the service state, the model catalogue, the budgets."""

    def __init__(self, state: "ServiceState") -> None:
        self.state = state
        self.kite = state.kite
        settings = state.settings
        parse_fallbacks(settings.kite_fallbacks)  # a malformed chain fails at start
        self.catalog = ModelCatalog(self.kite)
        self.budgets = KeyBudgets(settings)
        self.accepts = accepts_factory(self.kite.build_request)
        self.max_chars = settings.kite_max_prompt_chars
        self._embedder: EmbeddingProvider | None = None

    def warm(self) -> None:
        """Load the SDKs of every fallback and alias provider (the app's warm-up runs this
        in a worker thread): a failover must not wait for ``import anthropic``."""
        from kite_lab.core.errors import KiteError

        catalog, settings = self.catalog, self.state.settings
        models = [*catalog.aliases.values()]
        for primary, chain in parse_fallbacks(settings.kite_fallbacks).items():
            models += [m for m in (primary, *chain) if m != "*"]
        for model in models:
            try:
                target = catalog.resolve(model)
                self.kite.provider(target.provider).load_sdk()
            except (KiteError, ImportError):  # not served here: its requests get a 404
                continue

    def error(self, exc: Exception, request: Request) -> JSONResponse:
        request_id = request.scope["state"].get("request_id")
        error = openai_error_for(exc, self.state.secrets)
        if error is None:
            log.exception("gateway_error", extra={"event": "gateway_error"})
            error = GatewayError(500, "internal error; quote the request id", "internal_error")
        elif error.status >= 500:
            log.warning(
                "request_failed",
                extra={
                    "event": "request_failed",
                    "error": type(exc).__name__,
                    "status": error.status,
                },
            )
        return JSONResponse(error.body(request_id), error.status, headers=error.headers)

    async def charge(self, key_id: str | None, completion: Completion) -> None:
        await self.budgets.charge(key_id, completion.cost_usd)

    # -- chat -----------------------------------------------------------------------------
    async def chat(self, body: ChatCompletionRequest, request: Request) -> Response:
        scope_state = request.scope["state"]
        key_id = scope_state.get("key_id")
        target = self.catalog.resolve(body.model)
        call = to_chat_call(body, self.accepts)
        size = sum(len(m.content) for m in call.messages)
        if size > self.max_chars:
            raise GatewayError(
                422,
                f"messages are {size} characters; the limit is {self.max_chars} "
                "(KITE_MAX_PROMPT_CHARS)",
                "prompt_too_long",
                param="messages",
            )
        if self.state.settings.kite_log_prompts and call.messages:
            scope_state["prompt"] = call.messages[-1].content
        await self.budgets.check(key_id)
        kwargs = call.kwargs(self.accepts)
        chain = self.catalog.fallbacks(target)
        if body.stream:
            options = body.stream_options
            include_usage = bool(options is not None and options.include_usage)

            async def on_done(final: Completion) -> None:
                await self.charge(key_id, final)

            return await open_stream(
                self.kite,
                (target.id, *chain),
                kwargs,
                include_usage=include_usage,
                request_id=scope_state.get("request_id"),
                secrets=self.state.secrets,
                on_done=on_done,
            )
        completion = await self.kite.agenerate(model=target.id, fallbacks=chain, **kwargs)
        await self.charge(key_id, completion)
        answered = f"{completion.provider}/{completion.model}"
        return JSONResponse(
            completion_body(completion, answered, new_completion_id()),
            headers={"x-kite-model": model_header(answered)},
        )

    # -- embeddings -----------------------------------------------------------------------
    async def embed(self, body: EmbeddingRequest, request: Request) -> Response:
        key_id = request.scope["state"].get("key_id")
        self.catalog.check_embedding_model(body.model)
        texts = [body.input] if isinstance(body.input, str) else list(body.input)
        for index, text in enumerate(texts):
            if len(text) > self.max_chars:
                raise GatewayError(
                    422,
                    f"input[{index}] is {len(text)} characters; the limit is "
                    f"{self.max_chars} (KITE_MAX_PROMPT_CHARS)",
                    "input_too_long",
                    param="input",
                )
        await self.budgets.check(key_id)
        embedder = self._embedder
        if embedder is None:  # building it may assemble the model's folder: off the loop
            embedder = self._embedder = await asyncio.to_thread(lambda: self.kite.embeddings)
        if body.dimensions is not None and body.dimensions != embedder.dimension:
            raise GatewayError(
                422,
                f"dimensions={body.dimensions}: {embedder.model} returns "
                f"{embedder.dimension}-dimensional vectors (VECTOR_DIMENSION)",
                "unsupported_value",
                param="dimensions",
            )
        matrix = await embedder.aembed_array(texts)
        data = []
        as_base64 = body.encoding_format == "base64"
        for index, row in enumerate(matrix):
            vector: Any = (
                base64.b64encode(row.astype("<f4").tobytes()).decode("ascii")
                if as_base64
                else row.tolist()
            )
            data.append({"object": "embedding", "index": index, "embedding": vector})
        tokens = sum(max(1, (len(t) + 3) // 4) for t in texts)  # estimated: characters / 4
        from kite_lab.providers.pricing import cost_usd

        cost = cost_usd(embedder.name, embedder.model, Usage(tokens, 0))
        await self.budgets.charge(key_id, cost)
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": embedder.model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
            headers={"x-kite-model": model_header(f"{embedder.name}/{embedder.model}")},
        )


def build_openai_router(gateway: Gateway) -> APIRouter:
    """The gateway's routes (registered by ``create_app``)."""
    settings = gateway.state.settings
    embedding_model = with_dimension(
        EmbeddingRequest,
        settings.vector_dimension,
        (settings.embedding_model, f"{settings.embedding_provider}/{settings.embedding_model}"),
    )
    router = APIRouter(prefix="/v1", tags=["openai"])

    @router.post(
        "/chat/completions",
        response_model=ChatCompletion,
        responses=_STREAMED | _ERRORS,
        summary="OpenAI chat completions for any kite model (SSE with stream=true)",
    )
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Any:
        try:
            return await gateway.chat(body, request)
        except Exception as exc:
            return gateway.error(exc, request)

    @router.get(
        "/models",
        response_model=ModelList,
        responses={401: _ERRORS[401]},
        summary="Models and aliases this gateway serves",
    )
    async def list_models() -> Any:
        return JSONResponse({"object": "list", "data": gateway.catalog.cards()})

    @router.get(  # ids hold slashes ({model:path}): kept out of the schema, documented
        "/models/{model:path}", response_model=ModelCard, include_in_schema=False
    )
    async def get_model(model: str, request: Request) -> Any:
        try:
            return JSONResponse(gateway.catalog.card(model))
        except Exception as exc:
            return gateway.error(exc, request)

    @router.post(
        "/embeddings",
        response_model=EmbeddingList,
        responses=_ERRORS,
        summary="Embeddings from the configured embedding provider (fastembed offline)",
    )
    async def embeddings(body: embedding_model, request: Request) -> Any:  # type: ignore[valid-type]
        try:
            return await gateway.embed(body, request)
        except Exception as exc:
            return gateway.error(exc, request)

    return router
