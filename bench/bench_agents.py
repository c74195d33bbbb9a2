"""Agent figures: framework overhead of one agent step; 1,000 concurrent 2-step runs.

- overhead of one agent step (a run whose single model call answers at once), OpenAI and
  Anthropic wire formats: agent step time minus a raw SDK call sending the same request
  (same messages and tool schema) to the same fake server, measured call by call,
  interleaved, in the same run. ``kite.agenerate`` is measured alongside, so the share of
  the agents layer and of the call pipeline (kill switch, breaker, accounting, events)
  can be told apart;
- 1,000 concurrent agent runs of 2 steps (a calculator tool call, then the answer) with
  100 ms fake latency: wall time against the ideal 0.2 s, and against the same 2,000
  calls made by the raw SDK at the same concurrency (what the SDK's HTTP stack costs on
  this machine);
- the same 1,000 runs with the provider replaced by a 100 ms sleep (a registered
  provider; everything else -- pipeline, breaker, tools, events -- is real): what the
  agents layer and the pipeline cost at that concurrency, against the ideal 0.2 s.

The fake server runs in its own process, so its work does not share our GIL (a real
provider is another machine). ``--quick`` uses tiny sizes and asserts nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _common import Figure, parse_args, report, server_process, summarize  # noqa: E402

# The scripted model: "direct ..." is answered at once; anything else calls the calculator
# once and answers after seeing its result -- exactly two model calls per run.
SERVER = """
import sys
from kite_lab.testing import FakeLLMServer, Reply, ToolCallSpec

def first_user(request):
    for m in request.messages:
        if m.get("role") == "user":
            c = m["content"]
            return c if isinstance(c, str) else " ".join(b.get("text", "") for b in c)
    return ""

def answered(request):
    for m in request.messages:
        c = m.get("content")
        if m.get("role") == "tool" or (
            isinstance(c, list) and any(b.get("type") == "tool_result" for b in c)):
            return True
    return False

def handler(request):
    if first_user(request).startswith("direct") or answered(request):
        return Reply(text="done", prompt_tokens=20, completion_tokens=2)
    return Reply(tool_calls=[ToolCallSpec("calculator", {"expression": "6 * 7"})],
                 prompt_tokens=20, completion_tokens=8)

with FakeLLMServer() as server:
    server.latency = float(sys.argv[1])
    server.set_handler(handler)
    print(server.base_url, flush=True)
    sys.stdin.read()
"""


def scripted_server(latency: float) -> contextlib.AbstractContextManager[str]:
    return server_process(SERVER, str(latency))


def make_kite(wire: str, base_url: str, **extra: Any) -> Any:
    from kite_lab import Kite

    config: dict[str, Any] = {
        "llm_provider": wire,
        "cache_backend": "none",
        "breaker_backend": "memory",
    }
    if wire == "openai":
        config |= {"openai_api_key": "sk-bench-agents", "openai_base_url": f"{base_url}/v1"}
    elif wire == "anthropic":
        config |= {"anthropic_api_key": "sk-ant-bench-agents", "anthropic_base_url": base_url}
    config.update(extra)
    return Kite(config=config, env_file=None)


def raw_client(
    wire: str, base_url: str, spec: Any
) -> Callable[[list[dict[str, Any]]], Awaitable[Any]]:
    """A raw SDK call sending what the agent sends: the messages and the tool schema.

    Configured like kite_lab's providers: no SDK retries, one 60 s timeout (LLM_TIMEOUT)
    for every phase -- the SDK's default 5 s connect timeout fails at 1,000 connections.
    """
    if wire == "openai":
        import openai

        client = openai.AsyncOpenAI(
            api_key="sk-bench-raw", base_url=f"{base_url}/v1", max_retries=0, timeout=60.0
        )
        tools = [{"type": "function", "function": spec.to_dict()}]

        async def call(messages: list[dict[str, Any]]) -> Any:
            return await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=messages,
                tools=tools,  # type: ignore[arg-type]
            )

        return call
    import anthropic

    client_a = anthropic.AsyncAnthropic(
        api_key="sk-ant-bench-raw", base_url=base_url, max_retries=0, timeout=60.0
    )
    tools_a = [
        {"name": spec.name, "description": spec.description, "input_schema": spec.parameters}
    ]

    async def call_a(messages: list[dict[str, Any]]) -> Any:
        return await client_a.messages.create(
            model="claude-3-5-sonnet-20241022",
            max_tokens=1024,
            messages=messages,
            tools=tools_a,  # type: ignore[arg-type]
        )

    return call_a


# -- overhead of one step ---------------------------------------------------------------


async def step_overhead(wire: str, number: int, repeat: int) -> list[Figure]:
    from kite_lab.core.types import Message

    with scripted_server(0.0) as base_url:
        ai = make_kite(wire, base_url)
        agent = ai.create_agent("bench", tools=["calculator"])
        spec = agent.tools[0].spec
        raw = raw_client(wire, base_url, spec)
        prompt = "direct: what is six times seven?"

        async def sdk() -> Any:
            return await raw([{"role": "user", "content": prompt}])

        async def pipeline() -> Any:
            return await ai.agenerate(messages=[Message("user", prompt)], tools=[spec], cache=False)

        async def step() -> Any:
            result = await agent.run(prompt)
            assert result.success and result.iterations == 1, result.error
            return result

        bodies = {"sdk": sdk, "pipeline": pipeline, "agent": step}
        for body in bodies.values():  # warm the connections and imports
            for _ in range(5):
                await body()
        per_rep: dict[str, list[float]] = {k: [] for k in bodies}
        for _ in range(repeat):
            samples: dict[str, list[float]] = {k: [] for k in bodies}
            for _ in range(number):  # call by call, in turn: drift hits all three alike
                for name, body in bodies.items():
                    start = time.perf_counter()
                    await body()
                    samples[name].append(time.perf_counter() - start)
            for name in bodies:
                per_rep[name].append(statistics.median(samples[name]) * 1000)
        await ai.aclose()
    agent_over = [a - s for a, s in zip(per_rep["agent"], per_rep["sdk"], strict=True)]
    layer_over = [a - p for a, p in zip(per_rep["agent"], per_rep["pipeline"], strict=True)]
    sdk_ms = statistics.median(per_rep["sdk"])
    return [
        summarize(
            f"agent step overhead, {wire} wire (agent step - raw SDK call, same request)",
            agent_over,
            "ms",
            goal="< 1 ms (a small fraction of any real provider's latency)",
            baseline=f"raw {wire} SDK call to the same fake server: {sdk_ms:.3f} ms median",
            extra={
                "agent_step_ms": statistics.median(per_rep["agent"]),
                "sdk_call_ms": sdk_ms,
                "agenerate_ms": statistics.median(per_rep["pipeline"]),
                "ratio_agent_to_sdk": statistics.median(
                    a / s for a, s in zip(per_rep["agent"], per_rep["sdk"], strict=True)
                ),
            },
        ),
        summarize(
            f"agents-layer share of that overhead, {wire} wire (agent step - kite.agenerate)",
            layer_over,
            "ms",
            baseline="kite.agenerate with the same request (the call pipeline alone)",
        ),
    ]


# -- 1,000 concurrent runs ----------------------------------------------------------------


async def concurrent_runs(runs: int, repeat: int) -> list[Figure]:
    with scripted_server(0.1) as base_url:
        ai = make_kite("openai", base_url)
        agent = ai.create_agent("bench", tools=["calculator"])
        raw = raw_client("openai", base_url, agent.tools[0].spec)

        async def raw_run(i: int) -> None:  # the same two calls, by hand
            messages: list[dict[str, Any]] = [{"role": "user", "content": f"task {i}"}]
            first = await raw(messages)
            call = first.choices[0].message.tool_calls[0]
            messages += [
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": call.id,
                            "type": "function",
                            "function": {
                                "name": call.function.name,
                                "arguments": call.function.arguments,
                            },
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": call.id, "content": "42"},
            ]
            await raw(messages)

        async def agent_run(i: int) -> None:
            result = await agent.run(f"task {i}")
            assert result.success and result.iterations == 2, result.error

        async def wall(one: Callable[[int], Awaitable[None]]) -> float:
            start = time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(runs)))
            return time.perf_counter() - start

        await wall(raw_run)  # open the connections once
        await wall(agent_run)
        ours, bare = [], []
        for _ in range(repeat):
            bare.append(await wall(raw_run))
            ours.append(await wall(agent_run))
        await ai.aclose()

    sim = await simulated_runs(runs, repeat)
    ratio = [o / b for o, b in zip(ours, bare, strict=True)]
    return [
        summarize(
            f"{runs} concurrent agent runs x 2 steps, 100 ms fake latency",
            ours,
            "s wall",
            goal="ideal 0.2 s; no more than the raw SDK needs for the same 2,000 calls",
            baseline="ideal 0.2 s (2 x 100 ms); raw SDK, same calls and concurrency: "
            f"{statistics.median(bare):.2f} s median",
            extra={
                "ratio_to_ideal": statistics.median(ours) / 0.2,
                "ratio_to_raw_sdk": statistics.median(ratio),
                "raw_sdk_s": statistics.median(bare),
            },
        ),
        summarize(
            f"{runs} concurrent 2-call sequences on the raw openai SDK, 100 ms fake latency",
            bare,
            "s wall",
            baseline="reference: what the SDK's HTTP stack + fake server cost here",
        ),
        summarize(
            f"{runs} concurrent agent runs x 2 steps, provider = a 100 ms sleep",
            sim,
            "s wall",
            goal="<= 0.5 s",
            baseline="ideal 0.2 s (2 x 100 ms); pipeline, breaker, tools, events all real",
            extra={"ratio_to_ideal": statistics.median(sim) / 0.2},
        ),
    ]


async def simulated_runs(runs: int, repeat: int) -> list[float]:
    from kite_lab.core.types import Completion, ToolCall, Usage
    from kite_lab.providers.base import LLMProvider
    from kite_lab.providers.registry import register_provider

    class SleepProvider(LLMProvider):
        name = "bench_sleep"
        default_model = "sleep-100ms"

        async def generate(self, request: Any) -> Completion:
            await asyncio.sleep(0.1)
            if any(m.role == "tool" for m in request.messages):
                return Completion("done", self.name, request.model, Usage(20, 2))
            call = ToolCall("call_1", "calculator", {"expression": "6 * 7"})
            return Completion("", self.name, request.model, Usage(20, 8), tool_calls=[call])

        async def stream(self, request: Any) -> Any:  # pragma: no cover - not used
            raise NotImplementedError

    register_provider("bench_sleep", SleepProvider)
    ai = make_kite("bench_sleep", "")
    agent = ai.create_agent("bench", tools=["calculator"])

    async def wall() -> float:
        start = time.perf_counter()
        results = await asyncio.gather(*(agent.run(f"task {i}") for i in range(runs)))
        assert all(r.success and r.iterations == 2 for r in results)
        return time.perf_counter() - start

    await wall()
    return [await wall() for _ in range(repeat)]


async def main_async(quick: bool) -> list[Figure]:
    figures: list[Figure] = []
    for wire in ("openai", "anthropic"):
        figures += await step_overhead(wire, 20 if quick else 300, 1 if quick else 5)
    figures += await concurrent_runs(50 if quick else 1000, 1 if quick else 3)
    return figures


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    report(asyncio.run(main_async(args.quick)))


if __name__ == "__main__":
    main()
