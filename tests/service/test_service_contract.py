"""What the OpenAPI document promises, checked in process; agent failures by ``error_type``."""

from __future__ import annotations

import re

import pytest

from kite_lab.core.types import RunResult
from kite_lab.service.app import create_app

pytestmark = pytest.mark.timeout(60)


class ScriptedAgent:
    """An agent whose run returns a given result (a third-party agent, duck-typed)."""

    agent_type = "scripted"
    tools: list[object] = []

    def __init__(self, name: str, result: RunResult) -> None:
        self.name = name
        self.result = result

    async def run(self, text: str, session_id: str | None = None) -> RunResult:
        return self.result


def _serve(make_kite, **agents: RunResult):
    kite = make_kite()
    for name, result in agents.items():
        kite.agents[name] = ScriptedAgent(name, result)
    return create_app(kite)


async def test_agent_failure_status_comes_from_error_type_and_retry_after(make_kite, asgi_client):
    limited = RunResult(
        response="",
        error="the provider asked to slow down",
        error_type="RateLimitError",
        retry_after=7.2,
    )
    app = _serve(make_kite, limited=limited)
    async with asgi_client(app) as c:
        r = await c.post("/agents/limited/run", json={"input": "go"})
    assert r.status_code == 429, r.text
    assert r.headers["retry-after"] == "8"
    assert r.json()["error"]["type"] == "provider_rate_limited"
    assert r.json()["result"]["error_type"] == "RateLimitError"


async def test_agent_error_type_known_and_unknown_classes(make_kite, asgi_client):
    # a kite_lab class is looked up along its MRO; a foreign name maps to nothing
    timed_out = RunResult(response="", error="took too long", error_type="ProviderTimeout")
    unknown = RunResult(response="", error="whatever", error_type="SomethingElse")
    app = _serve(make_kite, slow=timed_out, odd=unknown)
    async with asgi_client(app) as c:
        slow = await c.post("/agents/slow/run", json={"input": "go"})
        odd = await c.post("/agents/odd/run", json={"input": "go"})
    assert slow.status_code == 504 and "retry-after" not in slow.headers
    assert odd.status_code == 200 and odd.json()["success"] is False  # the answer is the failure


async def test_agent_result_without_error_type_still_maps_its_class_prefix(make_kite, asgi_client):
    legacy = RunResult(response="", error="KillSwitchError: kill switch is active")
    app = _serve(make_kite, legacy=legacy)
    async with asgi_client(app) as c:
        r = await c.post("/agents/legacy/run", json={"input": "go"})
    assert r.status_code == 503 and r.json()["error"]["type"] == "kill_switch_active"


async def test_streamed_answers_are_documented_as_event_streams(make_kite, asgi_client):
    app = create_app(make_kite())
    async with asgi_client(app) as c:
        schema = (await c.get("/openapi.json")).json()
    for path in ("/complete", "/chat"):
        content = schema["paths"][path]["post"]["responses"]["200"]["content"]
        assert set(content) == {"application/json", "text/event-stream"}
        events = content["text/event-stream"]["schema"]
        assert [e["properties"]["event"]["const"] for e in events["oneOf"]] == [
            "chunk",
            "done",
            "error",
        ]


async def test_the_chat_user_message_rule_is_in_the_schema(make_kite, asgi_client):
    app = create_app(make_kite())
    async with asgi_client(app) as c:
        schema = (await c.get("/openapi.json")).json()
        no_user = await c.post("/chat", json={"messages": [{"role": "system", "content": "x"}]})
        blank = await c.post("/chat", json={"messages": [{"role": "user", "content": "  "}]})
        integral = await c.post("/complete", json={"prompt": "hi", "max_tokens": 5.0})
        fractional = await c.post("/complete", json={"prompt": "hi", "max_tokens": 5.5})
    contains = schema["components"]["schemas"]["ChatRequest"]["properties"]["messages"]["contains"]
    assert contains["properties"]["role"] == {"const": "user"}
    pattern = contains["properties"]["content"]["pattern"]
    assert re.search(pattern, "  ") is None and re.search(pattern, " a ")
    assert no_user.status_code == 422 and blank.status_code == 422
    # JSON Schema's integer includes 5.0: the schema-valid body is accepted
    assert integral.status_code == 200 and fractional.status_code == 422
