"""``create_app``: the FastAPI service over a ``Kite``.

One app = one ``Kite`` facade (settings from the environment / .env, like a notebook or a
script), plus the agents of an optional module (an exported notebook). The app adds only
what HTTP needs — auth, rate limits, idempotency keys, graceful shutdown, health,
metrics and request-id'd JSON logs — and calls the same ``Kite`` methods as everyone.

    uvicorn --factory kite_lab.service.app:create_app     # or: kite-lab serve
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from types import ModuleType
from typing import TYPE_CHECKING, Any

from kite_lab.service.auth import APIKeyAuth, load_api_keys
from kite_lab.service.limits import LIMITED_ROUTES, RouteLimits
from kite_lab.service.shutdown import Drainer
from kite_lab.service.state import ServiceState
from kite_lab.service.warmup import warm_up

if TYPE_CHECKING:
    from fastapi import FastAPI

    from kite_lab.kite import Kite

__all__ = ["create_app"]

log = logging.getLogger("kite_lab.service")

_DESCRIPTION = """LLM completions, chat and agents over the kite_lab `Kite` facade.

Send `Authorization: Bearer <key>` when the service has KITE_API_KEYS. POST routes accept
an `Idempotency-Key` header; `stream: true` answers as server-sent events (`chunk`,
`done`, `error`; content type `text/event-stream`). Every response carries `X-Request-ID`.
Right after start `/health` answers `"status": "starting"` (503) while the service loads
its provider SDK and components; requests sent meanwhile wait for that, then run.
`/v1/chat/completions`, `/v1/models` and `/v1/embeddings` speak OpenAI's API (and its
error envelope) for any kite model: point an OpenAI client's `base_url` at `/v1`.
"""


def create_app(
    kite: Kite | None = None,
    agents_module: str | ModuleType | None = None,
    *,
    rate_limits: Mapping[str, str | None] | None = None,
) -> FastAPI:
    """The HTTP service for ``kite`` (default: ``Kite()`` from the environment).

    ``agents_module``: a module (or its import path / .py file) whose Kite and agents to
    serve. ``rate_limits``: per-route overrides of KITE_RATE_LIMIT, e.g.
    ``{"/chat": "30/minute", "/complete": None}`` (None: unlimited).
    """
    from fastapi import FastAPI

    from kite_lab._version import __version__
    from kite_lab.kite import Kite
    from kite_lab.observability.logging import add_secrets, attach_event_logging
    from kite_lab.observability.metric_labels import LabelPolicy
    from kite_lab.observability.metrics import get_metrics
    from kite_lab.service.loader import discover, load_module
    from kite_lab.service.openai_routes import GATEWAY_ROUTES, Gateway, build_openai_router
    from kite_lab.service.routes import build_router
    from kite_lab.service.schemas import (
        AgentRunRequest,
        ChatRequest,
        CompletionRequest,
        with_prompt_limit,
    )

    kites: list[Kite] = []
    module_agents: dict[str, Any] = {}
    if agents_module is not None:
        kites, module_agents = discover(load_module(agents_module))
    if kite is None:
        kite = kites[0] if kites else Kite()
    if all(kite is not k for k in kites):
        kites.insert(0, kite)
    settings = kite.settings
    keys = load_api_keys(settings)
    secrets = sorted({*settings.secret_values(), *keys})
    add_secrets(secrets)
    limit = settings.kite_max_prompt_chars
    state = ServiceState(
        kite=kite,
        kites=kites,
        settings=settings,
        auth=APIKeyAuth(keys),
        limits=RouteLimits(settings, rate_limits, routes=(*LIMITED_ROUTES, *GATEWAY_ROUTES)),
        drainer=Drainer(settings.kite_shutdown_grace_seconds),
        metrics=get_metrics(),
        module_agents=module_agents,
        secrets=secrets,
        max_body_bytes=max(1_000_000, limit * 8 + 65_536),
    )

    app = FastAPI(
        title="Kite", version=__version__, description=_DESCRIPTION, lifespan=_lifespan(state)
    )
    app.state.kite_service = state
    router = build_router(
        state,
        with_prompt_limit(CompletionRequest, limit),
        with_prompt_limit(ChatRequest, limit),
        with_prompt_limit(AgentRunRequest, limit),
    )
    app.include_router(router)
    app.state.kite_gateway = gateway = Gateway(state)  # the OpenAI-compatible /v1 routes
    openai_router = build_openai_router(gateway)
    app.include_router(openai_router)
    state.routes.load([*app.routes, *router.routes, *openai_router.routes])
    _install_error_handlers(app, state)
    from kite_lab.service.middleware import ServiceMiddleware

    app.add_middleware(ServiceMiddleware, state=state)
    from kite_lab.service.openai_errors import OpenAIEnvelope

    app.add_middleware(OpenAIEnvelope)  # outermost: /v1 errors in OpenAI's envelope

    policy = LabelPolicy(
        models=[m for m in (settings.llm_model,) if m],
        agents=lambda: state.agents().keys(),
        routes=state.routes.templates,
    )
    state.policy = policy
    for each in kites:
        state.subscriptions.append(state.metrics.attach(each.event_bus, policy))
        state.subscriptions.append(
            attach_event_logging(each.event_bus, log_prompts=settings.kite_log_prompts)
        )
    return app


def _lifespan(state: ServiceState) -> Any:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from kite_lab.observability.logging import configure_logging

        # kite-lab serve configured logging already; plain uvicorn leaves kite_lab silent
        configure_logging(state.settings.kite_log_level, if_unconfigured=True)
        hooked = state.drainer.install()
        _log_startup(state, hooked)
        # the port opens now; /health says "starting" and requests wait until this is done
        state.readiness.begin()
        warming = asyncio.get_running_loop().create_task(_warm(state, app))
        try:
            yield
        finally:
            if not warming.done():
                warming.cancel()
            await asyncio.gather(warming, return_exceptions=True)
            await _shutdown(state)

    return lifespan


async def _warm(state: ServiceState, app: FastAPI) -> None:
    try:
        # /openapi.json, /metrics, the SDKs of the gateway's fallback and alias providers
        extra = [app.openapi, state.metrics.render, app.state.kite_gateway.warm]
        state.readiness.problems = await warm_up(state.kites, state.limits, extra=extra)
        _publish_breaker_state(state)  # the breaker is built now: no I/O, no import
    finally:
        state.readiness.set_ready()  # whatever failed: waiting requests must go on


def _publish_breaker_state(state: ServiceState) -> None:
    """Give ``kite_circuit_breaker_state`` a value before the first transition."""
    try:
        provider = state.kite.provider_name
        breaker_state = state.kite.breaker_for(provider).state  # last known: no I/O
    except Exception:  # no provider configured: /health says so
        return
    assert state.policy is not None
    label = state.policy.provider(provider)
    state.metrics.circuit_breaker_state.labels(breaker=label).set(breaker_state)


def _log_startup(state: ServiceState, hooked: bool) -> None:
    settings = state.settings
    try:
        provider, model = state.kite.resolve()
    except Exception as exc:
        provider, model = f"not configured ({type(exc).__name__})", None
    log.info(
        "service_started",
        extra={
            "event": "service_started",
            "llm_provider": provider,
            "model": model,
            "auth": state.auth.enabled,
            "metrics_public": settings.kite_metrics_public,
            "rate_limits": {r: s for r, s in state.limits.specs.items()},
            "redis": bool(settings.redis_url),
            "postgres": bool(settings.postgres_url),
            "agents": sorted(state.agents()),
            "graceful_shutdown": hooked,
            "grace_seconds": settings.kite_shutdown_grace_seconds,
        },
    )


async def _shutdown(state: ServiceState) -> None:
    """Release leases, close clients and pools, flush logs; never raises."""
    released = await state.drainer.release_leases()
    state.drainer.uninstall()
    for closer in [state.limits.aclose, *[k.aclose for k in state.kites]]:
        try:
            await closer()
        except Exception:
            log.warning(
                "shutdown_close_failed", exc_info=True, extra={"event": "shutdown_close_failed"}
            )
    try:
        from kite_lab.backends.redis_client import aclose_redis_clients

        await aclose_redis_clients()
    except Exception:
        pass
    for sub in state.subscriptions:
        sub.unsubscribe()
    state.subscriptions.clear()
    state.metrics.mark_process_dead()
    log.info("service_stopped", extra={"event": "service_stopped", "leases_released": released})
    for logger in (logging.getLogger("kite_lab"), logging.getLogger()):
        for handler in logger.handlers:
            handler.flush()


def _install_error_handlers(app: FastAPI, state: ServiceState) -> None:
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from kite_lab.core.errors import KiteError
    from kite_lab.service.http_errors import http_error_for

    def request_id(request: Any) -> str | None:
        found = request.scope.get("state", {}).get("request_id")
        return str(found) if found is not None else None

    async def on_kite_error(request: Any, exc: Exception) -> JSONResponse:
        error = http_error_for(exc, state.secrets)
        if error is None:
            raise exc
        if error.status >= 500:
            log.warning(
                "request_failed",
                extra={
                    "event": "request_failed",
                    "error": type(exc).__name__,
                    "status": error.status,
                },
            )
        return JSONResponse(error.body(request_id(request)), error.status, headers=error.headers)

    async def on_validation_error(request: Any, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        details = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        first = "; ".join(
            f"{'.'.join(str(p) for p in d['loc'] if p != 'body') or 'body'}: {d['msg']}"
            for d in details[:3]
        )
        body = {
            "error": {
                "type": "validation_error",
                "message": first or "invalid request",
                "request_id": request_id(request),
                "details": details,
            }
        }
        return JSONResponse(body, 422)

    async def on_http_error(request: Any, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        body = {
            "error": {"type": kind, "message": str(exc.detail), "request_id": request_id(request)}
        }
        return JSONResponse(body, exc.status_code, headers=getattr(exc, "headers", None))

    app.add_exception_handler(KiteError, on_kite_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
