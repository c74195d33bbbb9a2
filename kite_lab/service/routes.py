"""The HTTP endpoints: /complete, /chat, /agents, /health, /metrics.

Handlers are thin: validation is the pydantic models, errors are raised as kite_lab
errors and turned into statuses by the app's exception handlers, and every model call
goes through the ``Kite`` facade, so the service behaves exactly like a notebook or a
script using the same settings.

(No ``from __future__ import annotations`` here: FastAPI must see the per-app request
model classes, which are local variables, as real annotations.)
"""

import json
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, cast

from fastapi import APIRouter, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response, StreamingResponse

from kite_lab.core.errors import KiteError
from kite_lab.core.types import Completion, Message
from kite_lab.service.http_errors import http_error_for, http_error_for_result, retry_after_header
from kite_lab.service.schemas import (
    AgentInfo,
    AgentRunRequest,
    AgentRunResponse,
    ChatRequest,
    CompletionRequest,
    CompletionResponse,
    ErrorResponse,
    HealthResponse,
)

if TYPE_CHECKING:
    from kite_lab.service.state import ServiceState

__all__ = ["build_router"]

#: earlier turns of a session sent with a new /complete or /chat turn
SESSION_WINDOW = 50

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in {
        400: "unknown model or invalid parameter",
        401: "missing or invalid API key",
        402: "the provider's quota is exhausted",
        409: "the same Idempotency-Key is still in flight",
        413: "request body too large",
        422: "invalid request (the message names the field)",
        429: "rate limit exceeded (Retry-After)",
        502: "the provider failed or rejected the service's credentials",
        503: "circuit breaker open, kill switch active, or shutting down (Retry-After)",
        504: "the provider timed out",
    }.items()
}


def _sse_event(name: str, payload: dict[str, Any]) -> dict[str, Any]:
    """One server-sent event of the stream: its name and its JSON ``data``."""
    return {
        "properties": {
            "event": {"const": name},
            "data": {"contentMediaType": "application/json", "contentSchema": payload},
        }
    }


_SSE_ERROR = {
    "type": "object",
    "required": ["type", "message", "status"],
    "properties": {
        "type": {"type": "string"},
        "message": {"type": "string"},
        "status": {"type": "integer"},
        "request_id": {"type": ["string", "null"]},
    },
}
_SSE_CHUNK = {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}

#: the 200 of /complete and /chat: JSON, or server-sent events when the body has stream=true
#: (Open API 3.1: the event-stream ``schema`` describes one event)
_STREAMED: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The completion as JSON; with `stream: true`, server-sent events: "
        "`chunk` ({text}) as the model writes, then `done` (the completion as in the JSON "
        "answer) or `error` ({type, message, status})",
        "content": {
            "text/event-stream": {
                "schema": {
                    "type": "object",
                    "required": ["event", "data"],
                    "properties": {
                        "event": {"enum": ["chunk", "done", "error"]},
                        "data": {"type": "string"},
                    },
                    "oneOf": [
                        _sse_event("chunk", _SSE_CHUNK),
                        _sse_event("done", {"$ref": "#/components/schemas/CompletionResponse"}),
                        _sse_event("error", _SSE_ERROR),
                    ],
                },
                "example": 'event: chunk\ndata: {"text": "Hel"}\n\n'
                'event: done\ndata: {"text": "Hello", ...}\n\n',
            }
        },
    }
}


#: Open API links: a listed agent's name runs it (clients and stateful testers follow them)
_AGENT_LINKS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The agents this service runs",
        "links": {
            "RunFirstAgent": {
                "operationRef": "#/paths/~1agents~1{name}~1run/post",
                "parameters": {"name": "$response.body#/0/name"},
                "description": "run the first agent listed",
            }
        },
    }
}


def _params(body: Any) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if body.model is not None:
        params["model"] = body.model
    if body.temperature is not None:
        params["temperature"] = body.temperature
    if body.max_tokens is not None:
        params["max_tokens"] = body.max_tokens
    return params


def _completion_body(
    completion: Completion, session_id: str | None, request_id: str | None
) -> dict[str, Any]:
    data = completion.to_dict()
    data.pop("tool_calls", None)
    data["session_id"] = session_id
    data["request_id"] = request_id
    return data


def _sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False, default=str)}\n\n".encode()


def build_router(
    state: "ServiceState",
    complete_model: type[CompletionRequest],
    chat_model: type[ChatRequest],
    agent_model: type[AgentRunRequest],
) -> APIRouter:
    router = APIRouter()
    kite = state.kite

    async def history(session_id: str) -> list[Message]:
        store = kite.session_memory
        items = await store.awindow(session_id, max_messages=SESSION_WINDOW)
        return [Message.from_any(m) for m in items]

    async def remember(session_id: str, turns: list[Message], answer: str) -> None:
        # one transaction: the turn and its answer are stored together or not at all
        await kite.session_memory.aadd_messages(session_id, [*turns, Message("assistant", answer)])

    def check_model(model: str | None) -> None:
        """A ``provider/model`` id must name a registered provider (400 listing them)."""
        if model and "/" in model:
            from kite_lab.core.errors import UnknownProvider
            from kite_lab.providers.registry import available_providers

            prefix = model.partition("/")[0]
            providers = available_providers()
            if prefix not in providers:
                raise UnknownProvider(prefix, providers)

    async def answer(
        request: Request,
        body: Any,
        messages: list[Message],
        new_turns: list[Message],
        system: str | None,
    ) -> Any:
        request_id = request.scope["state"].get("request_id")
        check_model(body.model)
        params = _params(body)
        if system is not None:
            params["system"] = system
        if body.session_id:
            messages = await history(body.session_id) + messages
        if state.settings.kite_log_prompts:
            request.scope["state"]["prompt"] = messages[-1].content
        if body.stream:
            return await _stream(request_id, body.session_id, messages, new_turns, params)
        completion = await kite.agenerate(messages=messages, **params)
        if body.session_id:
            await remember(body.session_id, new_turns, completion.text)
        # the dict already has the response model's shape: skip FastAPI's re-validation
        return JSONResponse(_completion_body(completion, body.session_id, request_id))

    async def _stream(
        request_id: str | None,
        session_id: str | None,
        messages: list[Message],
        new_turns: list[Message],
        params: dict[str, Any],
    ) -> StreamingResponse:
        chunks = kite.astream_chunks(messages=messages, **params).__aiter__()
        first = await chunks.__anext__()  # errors before the first token keep their status

        async def events() -> AsyncIterator[bytes]:
            final: Completion | None = None
            try:
                chunk = first
                while True:
                    if chunk.text:
                        yield _sse("chunk", {"text": chunk.text})
                    if chunk.completion is not None:
                        final = chunk.completion
                    try:
                        chunk = await chunks.__anext__()
                    except StopAsyncIteration:
                        break
                if final is not None:
                    if session_id:
                        await remember(session_id, new_turns, final.text)
                    yield _sse("done", _completion_body(final, session_id, request_id))
            except KiteError as exc:
                error = http_error_for(exc, state.secrets)
                if error is not None:
                    yield _sse("error", error.body(request_id)["error"] | {"status": error.status})
            finally:
                aclose = getattr(chunks, "aclose", None)  # an async generator's
                if aclose is not None:
                    await aclose()

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @router.post(
        "/complete",
        response_model=CompletionResponse,
        responses=_STREAMED | _ERRORS,
        tags=["llm"],
        summary="Complete a prompt (SSE with stream=true)",
    )
    async def complete(body: complete_model, request: Request) -> Any:  # type: ignore[valid-type]
        req = cast(CompletionRequest, body)
        turn = Message("user", req.prompt)
        return await answer(request, req, [turn], [turn], req.system)

    @router.post(
        "/chat",
        response_model=CompletionResponse,
        responses=_STREAMED | _ERRORS,
        tags=["llm"],
        summary="Answer a conversation (SSE with stream=true)",
    )
    async def chat(body: chat_model, request: Request) -> Any:  # type: ignore[valid-type]
        messages = [Message(m.role, m.content) for m in cast(ChatRequest, body).messages]
        new_turns = [m for m in messages if m.role != "system"]
        return await answer(request, body, messages, new_turns, None)

    @router.get(
        "/agents",
        response_model=list[AgentInfo],
        responses=_AGENT_LINKS,
        tags=["agents"],
        summary="Agents served",
    )
    async def list_agents() -> Any:
        return [
            {
                "name": name,
                "type": getattr(agent, "agent_type", None),
                "tools": [getattr(t, "name", str(t)) for t in getattr(agent, "tools", [])],
            }
            for name, agent in sorted(state.agents().items())
        ]

    @router.post(
        "/agents/{name}/run",
        response_model=AgentRunResponse,
        responses=_ERRORS
        | {404: {"model": ErrorResponse, "description": "no agent with this name"}},
        tags=["agents"],
        summary="Run an agent registered on this service",
    )
    async def run_agent(name: str, body: agent_model, request: Request) -> Any:  # type: ignore[valid-type]
        request_id = request.scope["state"].get("request_id")
        agents = state.agents()
        agent = agents.get(name)
        if agent is None:
            return JSONResponse(
                status_code=404,
                content={
                    "error": {
                        "type": "unknown_agent",
                        "message": f"no agent named {name!r}; agents: "
                        + (", ".join(sorted(agents)) or "none"),
                        "request_id": request_id,
                        "details": {"agents": sorted(agents)},
                    }
                },
            )
        req = cast(AgentRunRequest, body)
        result = await agent.run(req.input, session_id=req.session_id)
        data = result.to_dict()
        data.update(agent=name, session_id=req.session_id, request_id=request_id)
        data["tool_calls"] = [dict(c) for c in data.get("tool_calls") or []]
        data.pop("steps", None)
        if not result.success:
            error = http_error_for_result(result, state.secrets)
            if error is not None and (error.status >= 500 or error.status in (402, 429)):
                if error.type == "circuit_open" and "Retry-After" not in error.headers:
                    error.headers.update(await _breaker_retry_after(agent))
                body_out = error.body(request_id)
                body_out["result"] = jsonable_encoder(data)
                return JSONResponse(
                    status_code=error.status, content=body_out, headers=error.headers
                )
        return data

    @router.get(
        "/health",
        response_model=HealthResponse,
        tags=["ops"],
        summary="Health (503 when unhealthy)",
        responses={503: {"model": HealthResponse, "description": "unhealthy"}},
    )
    async def health() -> Any:
        body, status = await state.health.check()
        return JSONResponse(status_code=status, content=body)

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        content, content_type = state.metrics.render()
        return Response(content=content, media_type=content_type)

    async def _breaker_retry_after(agent: Any) -> dict[str, str]:
        try:
            provider = kite.resolve(getattr(agent, "model", None))[0]
            stats = await kite.breaker_for(provider).aget_stats()
            open_until = stats.get("open_until")
            if open_until:
                return retry_after_header(float(open_until) - time.time())
        except Exception:
            pass
        return retry_after_header(kite.settings.circuit_breaker_timeout)

    return router
