"""engine="ray": the same map on a local 2-CPU Ray cluster against the fake server, with a
shared Postgres checkpoint; and the error naming the extra when Ray is missing."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from batch_helpers import llm_calls

from kite_lab import InvalidInput

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    ray = pytest.importorskip("ray", reason="the ray extra is not installed")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.mark.services
def test_ray_gives_the_asyncio_frame_and_resumes(
        ray_cluster: Any, make_ai: Any, fake_llm: Any, postgres_url: str) -> None:
    from kite_lab.testing import Fault, Reply

    ai = make_ai()
    rows = [{"id": i, "text": f"row {i}"} for i in range(600)]  # 3 tasks of <= 256 rows
    fake_llm.set_handler(lambda r: Fault(status=400) if r.last_user_text == "Say row 7"
                         else Reply(text=r.last_user_text.upper()))
    out = ai.map(rows, "Say {text}", engine="ray", checkpoint=postgres_url, concurrency=32,
                 progress=False)
    assert llm_calls(fake_llm) == 600
    local = ai.map(rows, "Say {text}", engine="asyncio", progress=False)
    for column in ("id", "text", "answer", "_error", "_total_tokens", "_row_key"):
        assert out[column].tolist() == local[column].tolist(), column
    assert out["_error"].notna().sum() == 1
    assert ai.event_bus.history("map:start")[0].data["tasks"] == 3
    fake_llm.set_handler(None)
    fake_llm.clear_requests()
    again = ai.map(rows, "Say {text}", engine="ray", checkpoint=postgres_url, progress=False)
    assert llm_calls(fake_llm) == 1  # only the failed row is asked again
    assert again["_error"].isna().all() and int(again["_cached"].sum()) == 599


def test_ray_needs_a_shared_checkpoint(ai: Any) -> None:
    with pytest.raises(InvalidInput, match="engine='ray' needs a shared checkpoint"):
        ai.map(["a"], "Say {text}", engine="ray", checkpoint="local.sqlite", progress=False)


def test_without_ray_the_error_names_the_extra(tmp_path: Any, fake_llm: Any) -> None:
    code = f"""
import sys
sys.modules["ray"] = None  # as if the extra were not installed
from kite_lab import Kite, ConfigError
ai = Kite(config={{"llm_provider": "openai", "openai_api_key": "sk-test-0000000000",
                   "openai_base_url": "{fake_llm.openai_base_url}"}}, env_file=None)
try:
    ai.map(["a"], "Say {{text}}", engine="ray", progress=False)
except ConfigError as exc:
    print("ERROR", exc)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    assert "ERROR engine='ray' needs Ray" in out.stdout, out.stderr
    assert "pip install 'kite-lab[ray]'" in out.stdout
    assert llm_calls(fake_llm) == 0
