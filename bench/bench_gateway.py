"""Gateway figures: what /v1/chat/completions adds over talking to the provider directly.

- added latency, p50 and p99: the same openai SDK (sync, one request at a time) calls the
  fake upstream directly (the baseline) and through ``kite-lab serve`` (bearer auth on),
  in interleaved blocks; added = gateway percentile - direct percentile (goal p50 <= 1 ms,
  LiteLLM's proxy publishes 3.25 ms);
- throughput: requests/s of /v1/chat/completions through ``kite-lab serve`` vs a bare
  FastAPI passthrough (one route: body -> openai SDK -> JSON) in front of the same
  upstream, under the same concurrent load (``wrk`` when installed, else httpx),
  interleaved repetitions (goal >= 0.9x);
- failover: KITE_FALLBACKS sends openai/gpt-4o-mini to anthropic when its upstream dies.
  Sequential requests run while the primary's upstream process is killed; reported: the
  time from the kill to the first answer from the fallback, and the latency of requests
  after the breaker opened (baseline: before the kill).

Every server (the fake upstreams, the gateway, the passthrough) is its own process.

    python bench/bench_gateway.py            # full (about 2 minutes)
    python bench/bench_gateway.py --quick    # smoke run, a few seconds; asserts nothing
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _common import Figure, parse_args, report, service_process, summarize  # noqa: E402

SERVICE_KEY = "bench-gateway-key-0123456789"
BODY = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Hi there"}]}
FAKE = """
import sys
from kite_lab.testing import FakeLLMServer
with FakeLLMServer() as s:
    print(s.base_url, flush=True)
    sys.stdin.read()
"""


# -- the baseline server: a bare FastAPI passthrough over the same SDK -------------------------
def passthrough_app() -> Any:
    """``POST /v1/chat/completions`` -> openai SDK -> JSON; nothing else (uvicorn --factory)."""
    import openai
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    client = openai.AsyncOpenAI(
        api_key=os.environ["OPENAI_API_KEY"], base_url=os.environ["OPENAI_BASE_URL"], max_retries=0
    )
    app = FastAPI()

    async def chat(request: Request) -> JSONResponse:
        body = await request.json()
        body["model"] = body["model"].partition("/")[2] or body["model"]
        response = await client.chat.completions.create(**body)
        return JSONResponse(response.model_dump())

    chat.__annotations__["request"] = Request  # a local name: resolve the string annotation
    app.post("/v1/chat/completions")(chat)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "healthy"}

    return app


# -- processes ------------------------------------------------------------------------------
class Upstream:
    """A FakeLLMServer in its own process; ``kill()`` makes it die mid-run."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", FAKE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(30)


@contextmanager
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    try:
        yield server
    finally:
        server.close()


@contextmanager
def server(kind: str, openai_url: str, env_extra: dict[str, str] | None = None) -> Iterator[str]:
    """``gateway`` (kite-lab serve) or ``bare`` (the passthrough); yields its base URL."""
    import httpx

    settings = {"KITE_API_KEYS": SERVICE_KEY, "CACHE_BACKEND": "none",
                "KITE_LOG_LEVEL": "WARNING", **(env_extra or {})}
    factory = None if kind == "gateway" else "bench_gateway:passthrough_app"
    with service_process(openai_url, factory, "--log-level", "warning",
                         settings=settings) as (url, _):
        headers = {"Authorization": f"Bearer {SERVICE_KEY}"}
        with httpx.Client(base_url=url, timeout=30, headers=headers) as client:
            for _ in range(20):  # lazy imports and first connections
                client.post("/v1/chat/completions", json=BODY).raise_for_status()
        yield url


# -- latency: the same SDK, direct vs through the gateway ------------------------------------
def _sdk(base_url: str) -> Any:
    import openai

    return openai.OpenAI(base_url=base_url, api_key=SERVICE_KEY, max_retries=0, timeout=30)


def _timed_calls(client: Any, model: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        client.chat.completions.create(model=model, messages=BODY["messages"])
        out.append(time.perf_counter() - started)
    return out


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latency_figures(quick: bool, fake: Upstream, gateway: str) -> list[Figure]:
    blocks, per_block = (2, 20) if quick else (8, 150)
    added50, added99, direct50 = [], [], []
    direct, through = _sdk(fake.url + "/v1"), _sdk(gateway + "/v1")
    _timed_calls(direct, "gpt-4o-mini", 20)
    _timed_calls(through, "openai/gpt-4o-mini", 20)
    for block in range(blocks):
        order = [(direct, "gpt-4o-mini", "d"), (through, "openai/gpt-4o-mini", "g")]
        times: dict[str, list[float]] = {}
        for client, model, key in order if block % 2 else order[::-1]:
            times[key] = _timed_calls(client, model, per_block)
        d50, g50 = _percentile(times["d"], 0.5), _percentile(times["g"], 0.5)
        d99, g99 = _percentile(times["d"], 0.99), _percentile(times["g"], 0.99)
        added50.append((g50 - d50) * 1000)
        added99.append((g99 - d99) * 1000)
        direct50.append(d50 * 1000)
    base = f"direct SDK -> fake upstream, p50 {statistics.median(direct50):.2f} ms"
    return [
        summarize("gateway added latency p50", added50, "ms", goal="<= 1 ms", baseline=base),
        summarize("gateway added latency p99", added99, "ms", goal="report", baseline=base),
    ]


# -- throughput: kite-lab serve vs a bare passthrough ---------------------------------------
_WRK = """
wrk.method = "POST"
wrk.body = '%s'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
"""


def _load(url: str, connections: int, seconds: float) -> float:
    """Requests/s of POST /v1/chat/completions at ``connections`` concurrent clients."""
    if shutil.which("wrk"):
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
            fh.write(_WRK % (json.dumps(BODY), SERVICE_KEY))
        try:
            out = subprocess.run(
                [
                    "wrk",
                    "-t",
                    "1",
                    "-c",
                    str(connections),
                    "-d",
                    f"{max(1, round(seconds))}s",
                    "-s",
                    fh.name,
                    url + "/v1/chat/completions",
                ],
                capture_output=True,
                text=True,
                check=True,
                timeout=seconds + 60,
            ).stdout
        finally:
            os.unlink(fh.name)
        if "Non-2xx" in out:
            raise RuntimeError(f"errors under load:\n{out}")
        return float(
            next(ln.split()[1] for ln in out.splitlines() if ln.startswith("Requests/sec"))
        )
    return asyncio.run(_httpx_load(url, connections, seconds))


async def _httpx_load(url: str, connections: int, seconds: float) -> float:
    import httpx

    headers = {"Authorization": f"Bearer {SERVICE_KEY}"}
    done = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=connections)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits, headers=headers) as c:

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                (await c.post("/v1/chat/completions", json=BODY)).raise_for_status()
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        return done / (time.perf_counter() - started)


def throughput_figure(quick: bool, fake: Upstream, gateway: str) -> Figure:
    reps, seconds, connections = (1, 1.0, 8) if quick else (3, 8.0, 32)
    ratios, ours, bare = [], [], []
    with server("bare", fake.url) as passthrough:
        for rep in range(reps):
            order = [(gateway, ours), (passthrough, bare)]
            for url, sink in order if rep % 2 else order[::-1]:
                sink.append(_load(url, connections, seconds))
            ratios.append(ours[-1] / bare[-1])
    return summarize(
        "gateway throughput vs bare FastAPI passthrough",
        ratios,
        "x",
        goal=">= 0.9x",
        baseline=f"passthrough {statistics.median(bare):.0f} req/s "
        f"(gateway {statistics.median(ours):.0f} req/s, {connections} connections)",
    )


# -- failover: the primary's upstream dies mid-run ------------------------------------------
def failover_figures(quick: bool) -> list[Figure]:
    reps, before, after = (1, 5, 8) if quick else (3, 50, 50)
    to_first, open_latency, base_latency = [], [], []
    for _ in range(reps):
        with upstream() as primary, upstream() as secondary:
            extra = {
                "ANTHROPIC_API_KEY": "sk-ant-bench-0123456789abcdef",
                "ANTHROPIC_BASE_URL": secondary.url,
                "KITE_FALLBACKS": "openai/gpt-4o-mini=anthropic/claude-3-5-haiku-latest",
                "CIRCUIT_BREAKER_THRESHOLD": "3",
            }
            with server("gateway", primary.url, extra) as gateway:
                client = _sdk(gateway + "/v1")
                base_latency += _timed_calls(client, "openai/gpt-4o-mini", before)
                primary.kill()
                killed = time.perf_counter()
                first = None
                latencies = []
                for _ in range(after):
                    started = time.perf_counter()
                    answer = client.chat.completions.create(
                        model="openai/gpt-4o-mini", messages=BODY["messages"]
                    )
                    latencies.append(time.perf_counter() - started)
                    if first is None and answer.model.startswith("anthropic/"):
                        first = time.perf_counter() - killed
                    assert answer.model.startswith("anthropic/"), answer.model
                assert first is not None
                to_first.append(first * 1000)
                open_latency.append(statistics.median(latencies[5:] or latencies) * 1000)
    base = f"p50 before the kill {statistics.median(base_latency) * 1000:.2f} ms"
    return [
        summarize(
            "failover: upstream death to first fallback answer",
            to_first,
            "ms",
            goal="report",
            baseline=base,
        ),
        summarize(
            "failover: p50 latency with the primary's breaker open",
            open_latency,
            "ms",
            goal="report",
            baseline=base,
        ),
    ]


def main() -> None:
    args = parse_args(__doc__ or "")
    with upstream() as fake, server("gateway", fake.url) as gateway:
        figures = latency_figures(args.quick, fake, gateway)
        figures.append(throughput_figure(args.quick, fake, gateway))
    figures += failover_figures(args.quick)
    report(figures)


if __name__ == "__main__":
    main()
