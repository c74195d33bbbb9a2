"""Service figures: HTTP throughput and the latency our middleware adds, on loopback.

- /complete through ``kite-lab serve`` vs a bare FastAPI passthrough calling the same
  openai SDK, both against the fake provider (goal >= 0.9x the passthrough's throughput);
- /complete served from the response cache: requests/s on one worker (baseline: the
  same worker calling the fake provider);
- p50/p99 latency added by auth + rate limit + idempotency keys (baseline: the same
  service with all three off), with in-memory stores, and with Redis when it answers.

Every server is a separate process, the fake provider another, and the load comes from
a third: ``wrk`` when installed (C, cheap), else an httpx script of this file
(``--load``). Runs are interleaved (ours, baseline, ours, ...) so machine noise hits
both alike.

    python bench/bench_service.py            # full (about 2-3 minutes)
    python bench/bench_service.py --quick    # smoke run, a few seconds per server
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
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
from _common import Figure, fake_server_process, report, service_process, summarize  # noqa: E402

SERVICE_KEY = "bench-service-key-0123456789"
BODY = {"prompt": "What is the capital of France?"}
CACHED_BODY = {"prompt": "What is the capital of France?", "temperature": 0}


# -- the baseline: a bare FastAPI passthrough over the same SDK --------------------------
def passthrough_app() -> Any:
    """``POST /complete`` -> openai SDK -> JSON; nothing else (uvicorn --factory)."""
    import openai
    from fastapi import FastAPI
    from pydantic import BaseModel

    client = openai.AsyncOpenAI(
        api_key=os.environ["OPENAI_API_KEY"], base_url=os.environ["OPENAI_BASE_URL"], max_retries=0
    )
    app = FastAPI()

    class Body(BaseModel):
        prompt: str
        temperature: float | None = None

    async def complete(body: Body) -> dict[str, Any]:
        extra = {"temperature": body.temperature} if body.temperature is not None else {}
        response = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": body.prompt}], **extra
        )
        usage = response.usage
        return {
            "text": response.choices[0].message.content,
            "usage": usage.model_dump() if usage else None,
        }

    complete.__annotations__["body"] = Body  # a local class: resolve the string annotation
    app.post("/complete")(complete)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "healthy"}

    return app


# -- processes -------------------------------------------------------------------------
class Server(str):
    """A server's base URL that also knows its pid (for CPU accounting)."""

    pid: int

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used so far."""
        with open(f"/proc/{self.pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def server(kind: str, upstream: str, env_extra: dict[str, str] | None = None) -> Iterator[Server]:
    """``ours`` (kite-lab serve) or ``bare`` (the passthrough); yields its base URL."""
    import httpx

    # the passthrough keeps uvicorn's defaults, access log included: a log line per request,
    # like ours
    factory = None if kind == "ours" else "bench_service:passthrough_app"
    with service_process(upstream, factory, settings=env_extra) as (base, pid):
        url = Server(base)
        url.pid = pid
        keyed = "KITE_API_KEYS" in (env_extra or {})
        headers = {"Authorization": f"Bearer {SERVICE_KEY}"} if keyed else {}
        with httpx.Client(base_url=url, timeout=30, headers=headers) as client:
            for body in (BODY, CACHED_BODY) * 10:  # lazy imports and first connections
                client.post("/complete", json=body).raise_for_status()
        yield url


# -- load generation -------------------------------------------------------------------
_WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '%(body)s'
wrk.headers["Content-Type"] = "application/json"
%(auth)s
local n = 0
request = function()
  n = n + 1
  %(idem)s
  return wrk.format(nil, "/complete")
end
"""


def _wrk(
    url: str, body: dict[str, Any], connections: int, seconds: float, auth: bool, idempotency: bool
) -> dict[str, float]:
    script = _WRK_SCRIPT % {
        "body": json.dumps(body),
        "auth": f'wrk.headers["Authorization"] = "Bearer {SERVICE_KEY}"' if auth else "",
        "idem": (
            'wrk.headers["Idempotency-Key"] = "k-" .. math.random(1, 1e9) .. "-" .. n'
            if idempotency
            else ""
        ),
    }
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(script)
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
                "--latency",
                "-s",
                fh.name,
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 60,
        ).stdout
    finally:
        os.unlink(fh.name)
    result: dict[str, float] = {"non2xx": 0.0}
    for line in out.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            result["rps"] = float(parts[1])
        elif len(parts) == 2 and parts[0] in ("50%", "99%"):
            result["p" + parts[0][:-1]] = _wrk_ms(parts[1])
        elif line.strip().startswith("Non-2xx"):
            result["non2xx"] = float(parts[-1])
        elif "requests in" in line:
            result["requests"] = result["sent"] = float(parts[0])
    return result


def _wrk_ms(text: str) -> float:
    for unit, scale in (("us", 0.001), ("ms", 1.0), ("s", 1000.0), ("m", 60000.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * scale
    return float(text)


async def _httpx_load(
    url: str, body: dict[str, Any], connections: int, seconds: float, auth: bool, idempotency: bool
) -> dict[str, float]:
    import httpx

    headers = {"Authorization": f"Bearer {SERVICE_KEY}"} if auth else {}
    latencies: list[float] = []
    errors = 0
    counter = 0
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        warm = min(50, connections * 2)
        for _ in range(warm):  # warm up
            await client.post("/complete", json=body, headers=headers)
        stop = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal errors, counter
            while time.perf_counter() < stop:
                counter += 1
                extra = {"Idempotency-Key": f"k-{os.getpid()}-{counter}"} if idempotency else {}
                t0 = time.perf_counter()
                r = await client.post("/complete", json=body, headers={**headers, **extra})
                latencies.append((time.perf_counter() - t0) * 1000)
                errors += r.status_code >= 300

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50": latencies[len(latencies) // 2],
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "non2xx": float(errors),
        "requests": float(len(latencies)),
        "sent": float(len(latencies) + warm),
    }


def load(
    url: str,
    body: dict[str, Any],
    *,
    connections: int,
    seconds: float,
    auth: bool = False,
    idempotency: bool = False,
) -> dict[str, float]:
    """Drive ``POST /complete`` from another process; rps, p50/p99 (ms), non-2xx count.

    For a ``Server``, also ``cpu_us``: the server process's CPU time per request, which
    unlike throughput does not depend on what else the machine is doing.
    """
    cpu_before = url.cpu_seconds() if isinstance(url, Server) else None
    if shutil.which("wrk"):
        result = _wrk(url, body, connections, seconds, auth, idempotency)
    else:
        args = json.dumps(
            {
                "url": url,
                "body": body,
                "connections": connections,
                "seconds": seconds,
                "auth": auth,
                "idempotency": idempotency,
            }
        )
        out = subprocess.run(
            [sys.executable, __file__, "--load", args],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 120,
        ).stdout
        result = json.loads(out.strip().splitlines()[-1])
    if result.get("non2xx"):
        raise RuntimeError(f"{result['non2xx']:.0f} non-2xx answers from {url}")
    if cpu_before is not None and result.get("sent"):
        result["cpu_us"] = (url.cpu_seconds() - cpu_before) / result["sent"] * 1e6
    return result


# -- the figures -------------------------------------------------------------------------
def throughput(upstream: str, seconds: float, repeat: int, connections: int) -> list[Figure]:
    ratios, cpu_ratios, cached_rps, cache_speedup = [], [], [], []
    ours_rps, bare_rps, ours_cpu, bare_cpu = [], [], [], []
    with server("ours", upstream) as ours, server("bare", upstream) as bare:
        for _ in range(repeat):
            b = load(bare, BODY, connections=connections, seconds=seconds)
            o = load(ours, BODY, connections=connections, seconds=seconds)
            c = load(ours, CACHED_BODY, connections=connections, seconds=seconds)
            ratios.append(o["rps"] / b["rps"])
            cpu_ratios.append(b["cpu_us"] / o["cpu_us"])
            ours_rps.append(o["rps"])
            bare_rps.append(b["rps"])
            ours_cpu.append(o["cpu_us"])
            bare_cpu.append(b["cpu_us"])
            cached_rps.append(c["rps"])
            cache_speedup.append(c["rps"] / o["rps"])
    tool = "wrk" if shutil.which("wrk") else "httpx"
    med = statistics.median
    return [
        summarize(
            "/complete throughput, kite-lab serve / bare FastAPI passthrough",
            ratios,
            "x",
            goal=">= 0.9x",
            baseline=f"bare FastAPI + openai SDK, same fake upstream: "
            f"{med(bare_rps):.0f} req/s (ours {med(ours_rps):.0f})",
            note=f"1 worker each, {connections} connections, {tool}, {seconds:.0f} s runs; "
            "server, fake provider and load generator share the machine's cores",
        ),
        summarize(
            "/complete server CPU per request, bare passthrough / kite-lab serve",
            cpu_ratios,
            "x",
            goal=">= 0.9x",
            baseline=f"bare passthrough {med(bare_cpu):.0f} us CPU/request "
            f"(ours {med(ours_cpu):.0f} us)",
            note="the throughput ratio a CPU-bound worker would reach; insensitive to "
            "other load on the machine",
        ),
        summarize(
            "/complete from the response cache, one worker",
            cached_rps,
            "req/s",
            baseline=f"same worker calling the fake provider: "
            f"{med(ours_rps):.0f} req/s "
            f"(cache speedup {med(cache_speedup):.2f}x)",
            note=f"temperature 0, memory cache, {connections} connections, {tool}",
        ),
    ]


def added_latency(
    upstream: str, seconds: float, repeat: int, redis_url: str | None
) -> list[Figure]:
    """Latency with auth + rate limit + idempotency keys minus latency without them."""
    figures = []
    variants: list[tuple[str, dict[str, str]]] = [("memory stores", {})]
    if redis_url:
        variants.append(
            ("Redis stores", {"REDIS_URL": redis_url, "KITE_REDIS_PREFIX": f"bench:{os.getpid()}:"})
        )
    for label, backend in variants:
        plain_env = {**backend, "KITE_RATE_LIMIT": "off"}
        guarded_env = {
            **backend,
            "KITE_RATE_LIMIT": "100000000/minute",
            "KITE_API_KEYS": SERVICE_KEY,
        }
        d50, d99, base50 = [], [], []
        with (
            server("ours", upstream, plain_env) as plain,
            server("ours", upstream, guarded_env) as guarded,
        ):
            for _ in range(repeat):
                p = load(plain, CACHED_BODY, connections=1, seconds=seconds)
                g = load(
                    guarded,
                    CACHED_BODY,
                    connections=1,
                    seconds=seconds,
                    auth=True,
                    idempotency=True,
                )
                d50.append(g["p50"] - p["p50"])
                d99.append(g["p99"] - p["p99"])
                base50.append(p["p50"])
        base = (
            f"same service, all three off: p50 {statistics.median(base50):.3f} ms "
            "(cached /complete, 1 connection)"
        )
        figures.append(
            summarize(
                f"p50 latency added by auth + rate limit + idempotency ({label})",
                d50,
                "ms",
                baseline=base,
            )
        )
        figures.append(
            summarize(
                f"p99 latency added by auth + rate limit + idempotency ({label})",
                d99,
                "ms",
                baseline=base,
            )
        )
    return figures


def _redis_url() -> str | None:
    url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return url
    except OSError:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--load", help=argparse.SUPPRESS)  # internal: the httpx load process
    args = parser.parse_args()
    if args.load:
        spec = json.loads(args.load)
        print(json.dumps(asyncio.run(_httpx_load(**spec))))
        return
    seconds, repeat = (1.0, 1) if args.quick else (5.0, 5)
    figures: list[Figure] = []
    with fake_server_process() as upstream:
        figures += throughput(upstream, seconds, repeat, connections=16)
        figures += added_latency(upstream, seconds, 1 if args.quick else 3, _redis_url())
    report(figures)


if __name__ == "__main__":
    main()
