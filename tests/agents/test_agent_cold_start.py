"""The first runs of a fresh process: nothing heavy is loaded on the loop while they wait.

Issue 13 item 6: 100 concurrent first runs took twice as long as the raw SDK because the
first model call imported the SDK (and the registry's entry points) on the event loop
while every other run waited. ``create_agent`` now loads them; these tests guard that,
and that 100 concurrent first calls build one provider and one SDK client, not many.
(Timings are in bench/bench_agent_concurrency.py; no test here asserts a duration.)
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

from agents_helpers import kite_config

from kite_lab import Kite
from kite_lab.testing import FakeLLMServer


def test_create_agent_loads_the_sdk_before_the_first_run(fake_llm: FakeLLMServer) -> None:
    config = kite_config(fake_llm, "openai")
    script = (
        "import json, sys\n"
        "from kite_lab import Kite\n"
        f"ai = Kite(config={config!r}, env_file=None)\n"
        "before = 'openai' in sys.modules\n"
        "ai.create_agent('a')\n"
        "print(json.dumps([before, 'openai.resources.chat' in sys.modules,\n"
        "                  sorted(ai._providers), sorted(ai._breakers)]))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    before, after, providers, breakers = json.loads(out.stdout.strip().splitlines()[-1])
    assert (before, after, providers, breakers) == (False, True, ["openai"], ["openai"])
    assert fake_llm.requests == []  # loading is not calling


def test_create_agent_without_a_key_still_fails_in_the_run_not_before() -> None:
    ai = Kite(config={"llm_provider": "openai", "cache_backend": "none"}, env_file=None)
    agent = ai.create_agent("keyless")  # no OPENAI_API_KEY: creation still works
    result = agent.run_sync("hello")
    assert not result.success and result.error_type == "MissingAPIKey"


async def test_100_concurrent_first_runs_build_one_provider_and_one_client(
    make_kite: object, fake_llm: FakeLLMServer, wire: str
) -> None:
    ai: Kite = make_kite()  # type: ignore[operator]
    agent = ai.create_agent("many")
    provider = ai.provider()
    assert provider._clients is not None and provider._clients.instances() == []
    results = await asyncio.gather(*(agent.run(f"task {i}") for i in range(100)))
    assert all(r.success for r in results), [r.error for r in results if not r.success][:3]
    assert ai.provider() is provider and list(ai._providers) == [wire]
    assert len(provider._clients.instances()) == 1  # one SDK client (one pool) for them all
