"""Tools: schemas from type hints and docstrings, argument validation, serialization,
the built-in tools and the bad inputs the issue lists. No model needed."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Literal

import pytest
from pydantic import BaseModel

from kite_lab import Kite, ToolError
from kite_lab.agents import ToolArgumentsError, ToolRegistry, build_tool, serialize_result
from kite_lab.agents.builtin_tools import calculate, current_datetime, memory_search_tool


def get_weather(city: str, units: Literal["C", "F"] = "C", days: int = 1) -> str:
    """Current weather for a city.

    Args:
        city: the city name, e.g. "Paris".
        units: temperature units.
        days: how many days of forecast.
    """
    return f"{city}: 21{units} for {days} day(s)"


class Address(BaseModel):
    street: str
    zip_code: str


def test_schema_from_type_hints_and_docstring() -> None:
    tool = build_tool("get_weather", get_weather)
    spec = tool.spec
    assert spec.name == "get_weather"
    assert spec.description == "Current weather for a city."
    params = spec.parameters
    assert params["type"] == "object"
    assert params["required"] == ["city"]
    assert params["properties"]["city"] == {
        "type": "string",
        "description": 'the city name, e.g. "Paris".',
    }
    assert params["properties"]["units"]["enum"] == ["C", "F"]
    assert params["properties"]["units"]["default"] == "C"
    assert params["properties"]["days"]["type"] == "integer"
    assert params["additionalProperties"] is False
    assert "title" not in params and "title" not in params["properties"]["city"]


def test_explicit_description_and_nested_models() -> None:
    def ship(address: Address, express: bool = False) -> str:
        return address.street

    tool = build_tool("ship", ship, "Ship a parcel.")
    assert tool.spec.description == "Ship a parcel."
    assert "$defs" in tool.spec.parameters
    # the nested model is validated and built before the function runs
    assert tool.invoke({"address": {"street": "1 Main St", "zip_code": "0"}}) == "1 Main St"


def test_parameter_names_that_shadow_pydantic_attributes() -> None:
    def lookup(schema: str, json: int, model_config: str = "x") -> str:
        return f"{schema}-{json}-{model_config}"

    tool = build_tool("lookup", lookup)
    assert set(tool.spec.parameters["properties"]) == {"schema", "json", "model_config"}
    assert tool.invoke({"schema": "s", "json": 2}) == "s-2-x"


def test_unannotated_parameter_is_named_in_the_error() -> None:
    def bad(city: str, days):  # noqa: ANN001 - the point of the test
        return city

    with pytest.raises(ToolError, match=r"parameter 'days' .* has no type annotation"):
        build_tool("bad", bad)


@pytest.mark.parametrize(
    ("func", "match"),
    [
        (lambda *args: None, r"\*args"),
        (lambda **kw: None, r"\*\*kw"),
    ],
)
def test_star_parameters_are_refused(func, match: str) -> None:
    with pytest.raises(ToolError, match=match):
        build_tool("star", func)


@pytest.mark.parametrize("name", ["", "has space", "x" * 65, "semi;colon"])
def test_invalid_tool_names(name: str) -> None:
    with pytest.raises(ToolError, match="invalid tool name"):
        build_tool(name, get_weather)


def test_duplicate_tool_name_is_an_error() -> None:
    ai = Kite(config={"llm_provider": "openai", "openai_api_key": "sk-test-dup-000000"})
    ai.create_tool("weather", get_weather)
    with pytest.raises(ToolError, match="already exists.*remove"):
        ai.create_tool("weather", get_weather)
    ai.tools.remove("weather")
    ai.create_tool("weather", get_weather)  # free again


def test_tool_decorator_registers_on_the_kite() -> None:
    ai = Kite(config={"llm_provider": "openai", "openai_api_key": "sk-test-deco-000000"})

    @ai.tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @ai.tool(name="mul", description="Multiply.")
    async def multiply(a: float, b: float) -> float:
        return a * b

    assert set(ai.tools) == {"add", "mul"}
    assert ai.tools["add"].spec.description == "Add two integers."
    assert ai.tools["mul"].is_async and ai.tools["mul"].spec.description == "Multiply."
    assert ai.tools["add"].invoke({"a": 2, "b": 3}) == 5
    assert ai.tools["mul"].invoke({"a": 2, "b": 3}) == 6


async def test_arguments_are_validated_before_the_function_runs() -> None:
    calls: list[object] = []

    def record(count: int, label: str) -> str:
        calls.append((count, label))
        return "ok"

    tool = build_tool("record", record)
    with pytest.raises(ToolArgumentsError) as info:
        await tool.ainvoke({"count": "many", "extra": 1})
    message = str(info.value)
    assert "'count'" in message and "missing required argument 'label'" in message
    assert "unexpected argument 'extra'" in message
    assert calls == []
    assert await tool.ainvoke({"count": "3", "label": "x"}) == "ok"  # lax coercion of "3"
    assert calls == [(3, "x")]


async def test_sync_tools_run_in_a_thread_and_async_tools_on_the_loop() -> None:
    import threading

    loop_thread = threading.get_ident()

    def where() -> int:
        return threading.get_ident()

    async def where_async() -> int:
        return threading.get_ident()

    assert await build_tool("t1", where).ainvoke({}) != loop_thread
    assert await build_tool("t2", where, run_in_thread=False).ainvoke({}) == loop_thread
    assert await build_tool("t3", where_async).ainvoke({}) == loop_thread


async def test_tool_timeout() -> None:
    async def slow() -> str:
        await asyncio.sleep(10)
        return "never"

    with pytest.raises(TimeoutError):
        await build_tool("slow", slow, timeout=0.01).ainvoke({})
    with pytest.raises(ToolError, match="timeout must be > 0"):
        build_tool("slow", slow, timeout=0)


@dataclass
class Point:
    x: int
    y: int


class Opaque:
    def __str__(self) -> str:
        return "<opaque thing>"


@pytest.mark.parametrize(
    ("value", "data", "text"),
    [
        ("plain text", "plain text", "plain text"),
        ({"a": 1}, {"a": 1}, '{"a": 1}'),
        ([1, 2.5, None], [1, 2.5, None], "[1, 2.5, null]"),
        (Point(1, 2), {"x": 1, "y": 2}, '{"x": 1, "y": 2}'),
        (Address(street="s", zip_code="z"), {"street": "s", "zip_code": "z"}, None),
        ((1, 2), [1, 2], "[1, 2]"),
    ],
)
def test_serialize_result(value: object, data: object, text: str | None) -> None:
    got_data, got_text = serialize_result(value)
    assert got_data == data
    if text is not None:
        assert got_text == text


def test_non_json_result_is_stringified_with_a_note() -> None:
    data, text = serialize_result(Opaque())
    assert data == "<opaque thing>"
    assert text.startswith("<opaque thing>") and "not JSON-serializable" in text
    data, text = serialize_result({"when": Opaque()})
    assert "not JSON-serializable" in text


def test_long_results_are_truncated_with_a_note() -> None:
    _, text = serialize_result("x" * 50, max_chars=10)
    assert text.startswith("x" * 10) and "truncated from 50 to 10" in text


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("2 + 3 * 4", 14),
        ("(2 + 3) * 4", 20),
        ("2 ** 10", 1024),
        ("2 ^ 3", 8),
        ("-7 // 2", -4),
        ("7 % 3", 1),
        ("sqrt(16) + abs(-2)", 6.0),
        ("round(pi, 3)", 3.142),
        ("max(1, 5, 3) - min(4, 2)", 3),
        ("log(e)", 1.0),
    ],
)
def test_calculator(expression: str, expected: float) -> None:
    assert math.isclose(calculate(expression), expected)


@pytest.mark.parametrize(
    ("expression", "match"),
    [
        ("__import__('os').system('echo hi')", "unsupported"),
        ("open('/etc/passwd')", "unsupported"),
        ("(1).__class__", "unsupported"),
        ("x + 1", "unsupported"),
        ("'a' * 3", "unsupported"),
        ("[1, 2]", "unsupported"),
        ("9 ** 9 ** 9", "too large"),
        ("(10 ** 5000) ** 5000", "too large"),
        ("factorial(100000)", "too large"),
        ("1 +", "not an arithmetic expression"),
        ("1" * 600, "longer than"),
    ],
)
def test_calculator_refuses_anything_but_arithmetic(expression: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        calculate(expression)


def test_calculator_never_uses_eval() -> None:
    import inspect

    import kite_lab.agents.builtin_tools as module

    source = inspect.getsource(module)
    assert "eval(" not in source.replace("_eval(", "").replace('mode="eval"', "")
    assert "shell=True" not in source


def test_current_datetime() -> None:
    now = current_datetime("Europe/Paris")
    assert now["timezone"] == "Europe/Paris" and now["datetime"][:10] == now["date"]
    with pytest.raises(ValueError, match="unknown time zone"):
        current_datetime("Mars/Olympus")


async def test_memory_search_tool_uses_asearch() -> None:
    @dataclass
    class Hit:
        doc_id: str
        chunk_id: int
        text: str
        score: float
        metadata: dict

    class Memory:
        async def asearch(self, query: str, top_k: int) -> list[Hit]:
            return [Hit("doc", i, f"{query} #{i}", 1.0 / (i + 1), {}) for i in range(top_k)]

    tool = memory_search_tool(Memory())
    assert tool.name == "search_memory"
    hits = await tool.ainvoke({"query": "kites", "top_k": 2})
    assert [h["text"] for h in hits] == ["kites #0", "kites #1"]
    assert (await tool.ainvoke({"query": "q", "top_k": 500})).__len__() == 20  # clamped


def test_registry_is_a_read_only_mapping() -> None:
    registry = ToolRegistry()
    tool = registry.create("get_weather", get_weather)
    assert (
        registry["get_weather"] is tool and len(registry) == 1 and list(registry) == ["get_weather"]
    )
    with pytest.raises(ToolError, match="no tool named 'nope'"):
        registry.remove("nope")
    with pytest.raises(ToolError, match="already exists"):
        registry.register(build_tool("get_weather", get_weather))
