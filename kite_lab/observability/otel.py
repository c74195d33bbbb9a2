"""OpenTelemetry spans for LLM calls, agent runs, tool calls and map rows, from events.

Why from the event bus: every call, run and tool call is already an event with its ids
(``request_id``, ``run_id``, ``call_id``), so spans are built by a subscriber, with the
events' own times, and the call path never waits for a tracer. Attributes follow the
GenAI semantic conventions (``gen_ai.system``, ``gen_ai.request.model``,
``gen_ai.usage.input_tokens`` ...) plus kite's cost, cache and replay flags, so Jaeger,
Phoenix or Langfuse read them as they read any GenAI trace.

Why export only with an endpoint: spans leave the process over OTLP/HTTP when
``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``endpoint=``) is set, and never otherwise; pass your
own ``tracer_provider`` to send them anywhere else. Needs ``pip install 'kite-lab[otel]'``.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

from kite_lab.core.errors import ConfigError

if TYPE_CHECKING:
    from kite_lab.core.events import Event, EventBus, Subscription

__all__ = ["OtelBridge", "enable_otel"]

_EXTRA = "pip install 'kite-lab[otel]'"


def _ns(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


class OtelBridge:
    """Turns one bus's events into spans until ``close()``."""

    def __init__(self, bus: EventBus, tracer_provider: Any, *, exporting: bool,
                 owns_provider: bool) -> None:
        from opentelemetry import trace

        self._trace = trace
        self.tracer_provider = tracer_provider
        self.tracer = tracer_provider.get_tracer("kite_lab")
        #: whether spans leave the process (an OTLP endpoint was given)
        self.exporting = exporting
        self._owns_provider = owns_provider
        self._lock = threading.Lock()
        self._runs: dict[Any, Any] = {}
        self._calls: dict[Any, Any] = {}
        self._tools: dict[Any, Any] = {}
        self._maps: dict[Any, Any] = {}
        self._subscriptions: list[Subscription] = [
            bus.subscribe(pattern, handler) for pattern, handler in (
                ("agent:*", self._on_agent), ("llm:*", self._on_llm), ("tool:*", self._on_tool),
                ("map:*", self._on_map))
        ]

    # -- spans -----------------------------------------------------------------------
    def _context_of(self, run_id: Any) -> Any:
        parent = self._runs.get(run_id) or self._maps.get(run_id)
        return self._trace.set_span_in_context(parent) if parent is not None else None

    def _start(self, name: str, at: float, parent_run: Any, attributes: dict[str, Any]) -> Any:
        return self.tracer.start_span(
            name, context=self._context_of(parent_run), start_time=_ns(at),
            kind=self._trace.SpanKind.CLIENT if name.startswith("chat") else
            self._trace.SpanKind.INTERNAL,
            attributes={k: v for k, v in attributes.items() if v is not None})

    def _end(self, span: Any, at: float, error: Any = None) -> None:
        if error:
            from opentelemetry.trace import Status, StatusCode

            span.set_attribute("error.type", str(error))
            span.set_status(Status(StatusCode.ERROR, str(error)))
        span.end(end_time=_ns(at))

    def _on_agent(self, event: Event) -> None:
        d = event.data
        run_id = d.get("run_id")
        if event.name == "agent:start":
            from kite_lab.core import events

            outer = (events._context.get() or {}).get("run_id")
            with self._lock:
                self._runs[run_id] = self._start(
                    f"invoke_agent {d.get('agent')}", event.time, outer, {
                        "gen_ai.operation.name": "invoke_agent",
                        "gen_ai.agent.name": d.get("agent"), "kite.run_id": run_id,
                        "gen_ai.request.model": d.get("model")})
        elif event.name == "agent:end":
            with self._lock:
                span = self._runs.pop(run_id, None)
            if span is None:  # started before the bridge was attached
                span = self._start(f"invoke_agent {d.get('agent')}",
                                   event.time - float(d.get("latency_s") or 0.0), None, {
                                       "gen_ai.operation.name": "invoke_agent",
                                       "gen_ai.agent.name": d.get("agent"),
                                       "kite.run_id": run_id})
            for key, value in (("gen_ai.usage.input_tokens", d.get("prompt_tokens")),
                               ("gen_ai.usage.output_tokens", d.get("completion_tokens")),
                               ("kite.cost_usd", d.get("cost_usd")),
                               ("kite.success", d.get("success")),
                               ("kite.iterations", d.get("iterations"))):
                if value is not None:
                    span.set_attribute(key, value)
            self._end(span, event.time, None if d.get("success") else "AgentRunFailed")

    def _on_llm(self, event: Event) -> None:
        d = event.data
        request_id = d.get("request_id")
        attributes = {"gen_ai.operation.name": "chat", "gen_ai.system": d.get("provider"),
                      "gen_ai.request.model": d.get("model"), "kite.request_id": request_id,
                      "kite.run_id": d.get("run_id")}
        parent = d.get("run_id") or d.get("map_run")
        if event.name == "llm:request":
            with self._lock:
                self._calls[request_id] = self._start(f"chat {d.get('model')}", event.time,
                                                      parent, attributes)
            return
        with self._lock:
            span = self._calls.pop(request_id, None)
        if span is None:  # a cache hit has no request event: an instant span
            latency = float(d.get("latency_s") or 0.0)
            span = self._start(f"chat {d.get('model')}", event.time - latency, parent,
                               attributes)
        if event.name == "llm:response":
            for key, value in (("gen_ai.response.model", d.get("model")),
                               ("gen_ai.usage.input_tokens", d.get("prompt_tokens")),
                               ("gen_ai.usage.output_tokens", d.get("completion_tokens")),
                               ("kite.cost_usd", d.get("cost_usd")),
                               ("kite.cached", bool(d.get("cached"))),
                               ("kite.replayed", bool(d.get("replayed"))),
                               ("kite.latency_s", d.get("latency_s"))):
                if value is not None:
                    span.set_attribute(key, value)
            if d.get("finish_reason"):
                span.set_attribute("gen_ai.response.finish_reasons", [d["finish_reason"]])
            self._end(span, event.time)
        elif event.name == "llm:error":
            if d.get("status") is not None:
                span.set_attribute("http.response.status_code", d["status"])
            self._end(span, event.time, d.get("error") or "error")

    def _on_tool(self, event: Event) -> None:
        d = event.data
        call_id = str(d.get("call_id"))
        if event.name == "tool:call":
            import json

            with self._lock:
                self._tools[call_id] = self._start(
                    f"execute_tool {d.get('tool')}", event.time, d.get("run_id"), {
                        "gen_ai.operation.name": "execute_tool",
                        "gen_ai.tool.name": d.get("tool"), "gen_ai.tool.call.id": call_id,
                        "kite.tool.arguments": json.dumps(d.get("arguments"), default=str)})
        elif event.name == "tool:result":
            with self._lock:
                span = self._tools.pop(call_id, None)
            if span is not None:
                if d.get("ok"):
                    span.set_attribute("kite.tool.result", str(d.get("result"))[:1000])
                self._end(span, event.time, None if d.get("ok") else d.get("outcome") or "error")

    def _on_map(self, event: Event) -> None:
        d = event.data
        map_id = d.get("map_run") or d.get("run_id")
        if event.name == "map:start":
            with self._lock:
                self._maps[map_id] = self._start("map", event.time, None, {
                    "kite.map_run": map_id, "kite.rows": d.get("rows")})
        elif event.name == "map:row":
            latency = float(d.get("latency_s") or 0.0)
            span = self._start("map row", event.time - latency, map_id, {
                "kite.map_run": map_id, "kite.row": str(d.get("row_key")),
                "kite.outcome": d.get("outcome"), "kite.cost_usd": d.get("cost_usd")})
            self._end(span, event.time, d.get("error"))
        elif event.name == "map:done":
            with self._lock:
                span = self._maps.pop(map_id, None)
            if span is not None:
                if d.get("spent_usd") is not None:
                    span.set_attribute("kite.cost_usd", d["spent_usd"])
                status = d.get("status")
                self._end(span, event.time, None if status == "completed" else status)

    # -- control ---------------------------------------------------------------------
    def force_flush(self, timeout_ms: int = 10_000) -> bool:
        return bool(self.tracer_provider.force_flush(timeout_ms))

    def close(self) -> None:
        for subscription in self._subscriptions:
            subscription.unsubscribe()
        self._subscriptions.clear()
        if self._owns_provider:
            self.tracer_provider.shutdown()


def enable_otel(bus: EventBus, *, endpoint: str | None = None, tracer_provider: Any = None,
                service_name: str = "kite-lab") -> OtelBridge:
    """Spans for ``bus``'s calls, runs, tools and map rows.

    ``endpoint`` (default: OTEL_EXPORTER_OTLP_ENDPOINT) is an OTLP/HTTP collector such as
    ``http://localhost:4318``; without one nothing is exported. ``tracer_provider``: your
    own (its processors decide where spans go).
    """
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
    except ImportError:
        raise ConfigError(f"OpenTelemetry traces need the otel extra: {_EXTRA}") from None
    if tracer_provider is not None:
        return OtelBridge(bus, tracer_provider, exporting=False, owns_provider=False)
    endpoint = endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if endpoint:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError:
            raise ConfigError(f"exporting spans over OTLP needs the otel extra: {_EXTRA}"
                              ) from None
        url = endpoint.rstrip("/")
        url = url if url.endswith("/v1/traces") else url + "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
    return OtelBridge(bus, provider, exporting=bool(endpoint), owns_provider=True)
