"""Traces: OpenTelemetry spans (GenAI conventions) sent over OTLP/HTTP to a real receiver
on 127.0.0.1 that decodes the protobuf, and the notebook trace view read from the log."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from kite_lab.testing import Fault, Reply, ToolCallSpec

pytest.importorskip("opentelemetry.sdk")


class _Receiver(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.spans: list[Any] = []
        self.paths: list[str] = []


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        body = self.rfile.read(int(self.headers["Content-Length"]))
        message = ExportTraceServiceRequest()
        message.ParseFromString(body)
        server: Any = self.server
        server.paths.append(self.path)
        for resource in message.resource_spans:
            for scope in resource.scope_spans:
                server.spans.extend(scope.spans)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    server = _Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _attributes(span: Any) -> dict[str, Any]:
    out = {}
    for kv in span.attributes:
        value = kv.value
        kind = value.WhichOneof("value")
        out[kv.key] = list(value.array_value.values) if kind == "array_value" else getattr(
            value, kind)
    return out


def _agent_run(ai: Any, fake_llm: Any) -> Any:
    @ai.tool
    def get_weather(city: str) -> str:
        """Current weather in a city."""
        return {"Paris": "sunny"}.get(city, "unknown")

    agent = ai.create_agent("weather", "Use the tool.", tools=[get_weather])
    fake_llm.enqueue(Reply(tool_calls=[ToolCallSpec("get_weather", {"city": "Paris"})],
                           prompt_tokens=11, completion_tokens=4),
                     Reply(text="Sunny in Paris.", prompt_tokens=20, completion_tokens=5))
    result = agent.run_sync("Weather in Paris?")
    assert result.success
    return result


def test_spans_reach_a_real_otlp_receiver_with_genai_attributes(make_kite: Any, fake_llm: Any,
                                                                receiver: _Receiver) -> None:
    endpoint = f"http://127.0.0.1:{receiver.server_address[1]}"
    ai = make_kite(otel_exporter_otlp_endpoint=endpoint, cache_backend="memory")
    _agent_run(ai, fake_llm)
    ai.complete("cached?", temperature=0)
    ai.complete("cached?", temperature=0)
    fake_llm.enqueue(Fault(status=500))
    with pytest.raises(Exception, match="HTTP 500"):
        ai.complete("fails")
    bridge = ai.enable_otel()  # the one the first call attached
    assert bridge.exporting and bridge.force_flush()
    assert receiver.paths and set(receiver.paths) == {"/v1/traces"}
    by_name: dict[str, list[Any]] = {}
    for span in receiver.spans:
        by_name.setdefault(span.name, []).append(span)
    [run] = by_name["invoke_agent weather"]
    [tool] = by_name["execute_tool get_weather"]
    chats = by_name["chat gpt-4o-mini"]
    assert len(chats) == 2 + 2 + 1
    in_run = [c for c in chats if c.parent_span_id == run.span_id]
    assert len(in_run) == 2 and tool.parent_span_id == run.span_id
    assert all(c.trace_id == run.trace_id for c in in_run)
    first = _attributes(in_run[0])
    assert first["gen_ai.system"] == "openai" and first["gen_ai.request.model"] == "gpt-4o-mini"
    assert (first["gen_ai.usage.input_tokens"], first["gen_ai.usage.output_tokens"]) == (11, 4)
    assert first["gen_ai.operation.name"] == "chat" and first["kite.cost_usd"] > 0
    assert first["kite.cached"] is False
    assert _attributes(tool)["gen_ai.tool.name"] == "get_weather"
    assert _attributes(tool)["kite.tool.result"] == "sunny"
    run_attributes = _attributes(run)
    assert run_attributes["gen_ai.usage.input_tokens"] == 31 and run_attributes["kite.success"]
    assert sum(_attributes(c).get("kite.cached", False) for c in chats) == 1
    [failed] = [c for c in chats if c.status.code == 2]  # STATUS_CODE_ERROR
    assert _attributes(failed)["error.type"] == "ServerError"
    assert all(c.end_time_unix_nano >= c.start_time_unix_nano for c in receiver.spans)


def test_no_endpoint_no_export(make_kite: Any, monkeypatch: Any) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    ai = make_kite()
    ai.complete("hello")
    assert "_kite_otel" not in ai.__dict__  # nothing attached without an endpoint
    bridge = ai.enable_otel()
    assert not bridge.exporting
    bridge.close()


def test_in_process_provider_gets_the_spans(make_kite: Any, fake_llm: Any) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    ai = make_kite()
    ai.enable_otel(tracer_provider=provider)
    ai.complete("one")
    [span] = exporter.get_finished_spans()
    assert span.name == "chat gpt-4o-mini" and span.attributes["gen_ai.system"] == "openai"


def test_the_trace_view_of_a_run_reads_the_log(make_kite: Any, fake_llm: Any) -> None:
    ai = make_kite(kite_log_prompts=True)
    result = _agent_run(ai, fake_llm)
    ai.complete("a call outside the run")
    view = ai.trace(result)
    assert view.title.startswith("run ") and len(view.roots) == 1
    [root] = view.roots
    assert root.record.kind == "agent" and root.record.name == "weather"
    assert [c.record.kind for c in root.children] == ["llm", "tool", "llm"]
    text = repr(view)
    assert "agent weather" in text and "tool get_weather" in text and "sunny" in text
    assert "11+4 tokens" in text and "├─" in text and "└─" in text
    page = view._repr_html_()
    assert page.count("position:absolute") == 4 and "kite-trace" in page
    assert ai.trace().title == view.title  # the latest run
    assert ai.trace(root.record.run_id).to_dict()["roots"][0]["name"] == "weather"
    with pytest.raises(ValueError, match="no such agent run"):
        ai.trace(type("R", (), {"agent": "nobody", "latency_s": 1.0})())


def test_the_trace_view_of_a_cell(make_kite: Any) -> None:
    from kite_lab.core.events import event_context

    ai = make_kite()
    with event_context(cell_id="cell-42"):
        ai.complete("first")
        ai.complete("second")
    ai.complete("elsewhere")
    view = ai.trace({"cell": "cell-42"})
    assert [s.record.kind for s in view.roots] == ["llm", "llm"]


def test_map_rows_become_spans_under_their_map(make_kite: Any) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from kite_lab.core.events import event_context

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    ai = make_kite()
    ai.enable_otel(tracer_provider=provider)
    bus = ai.event_bus
    bus.emit("map:start", map_run="m1", rows=1)
    with event_context(map_run="m1"):
        ai.complete("row prompt")
    bus.emit("map:row", map_run="m1", row_key="r0", outcome="success", cost_usd=0.01,
             latency_s=0.01, error=None)
    bus.emit("map:done", map_run="m1", status="completed", rows=1, spent_usd=0.01)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    root = spans["map"]
    assert spans["map row"].parent.span_id == root.context.span_id
    assert spans["chat gpt-4o-mini"].parent.span_id == root.context.span_id
    assert spans["map row"].attributes["kite.row"] == "r0"
