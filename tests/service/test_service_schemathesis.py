"""schemathesis against the running service's OpenAPI schema: the document is the contract.

Every check (no 5xx, documented statuses, content types and headers, response schemas,
server-sent events included, schema-valid bodies accepted and invalid ones rejected) over
every phase, the stateful one too (it follows the /agents -> /agents/{name}/run link).
The OpenAI-compatible gateway (/v1/chat/completions, /v1/models, /v1/embeddings) is in the
same document and run, with an Anthropic upstream configured too.
Bounded: 10 examples per operation, fixed seed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from conftest import SERVICE_KEY

pytestmark = pytest.mark.timeout(150)

ST = str(Path(sys.executable).with_name("st"))
AGENTS = "from kite_lab import Kite\n\nai = Kite()\nai.create_agent('helper', 'Be concise.')\n"
# Values harvested from responses are not fed to /complete and /chat: they take any string
# as ``model`` in their schema but answer 400 for a ``prefix/model`` whose prefix is no
# provider, and /v1/embeddings answers with such an id ("sentence-transformers/...").
CONFIG = """
[[operations]]
include-path-regex = "^/(complete|chat)$"

[operations.phases.examples.extra-data-sources]
responses = false

[operations.phases.coverage.extra-data-sources]
responses = false

[operations.phases.fuzzing.extra-data-sources]
responses = false
"""


def test_the_service_keeps_its_openapi_contract(service_env, start_service, tmp_path):
    if not Path(ST).exists():
        pytest.skip("schemathesis is not installed (pip install schemathesis)")
    (tmp_path / "exported_agents.py").write_text(AGENTS, encoding="utf-8")
    (tmp_path / "schemathesis.toml").write_text(CONFIG, encoding="utf-8")
    service_env.update(
        KITE_API_KEYS=SERVICE_KEY,
        ANTHROPIC_API_KEY="sk-ant-test-FAKEKEY0123456789abcdef",
        ANTHROPIC_BASE_URL=service_env["OPENAI_BASE_URL"].removesuffix("/v1"),
        KITE_MODEL_ALIASES="fast=anthropic/claude-3-5-haiku-latest",
    )
    service = start_service(service_env, app="exported_agents")
    result = subprocess.run(
        [
            ST,
            "run",
            f"{service.url}/openapi.json",
            "--header",
            f"Authorization: Bearer {SERVICE_KEY}",
            "--checks",
            "all",
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--max-examples",
            "10",
            "--seed",
            "1",
            "--generation-database",
            "none",
            "--request-timeout",
            "20",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "passed" in result.stdout
    auth = {"Authorization": f"Bearer {SERVICE_KEY}"}
    paths = httpx.get(f"{service.url}/openapi.json", headers=auth, timeout=10).json()["paths"]
    assert {"/v1/chat/completions", "/v1/models", "/v1/embeddings"} <= set(paths)
    selected = re.search(r"Selected: (\d+)/(\d+)", result.stdout)
    tested = re.search(r"Tested: (\d+)", result.stdout)
    assert selected and tested and selected[1] == selected[2] == tested[1]  # the gateway too
    assert "Stateful" in result.stdout and "1 covered" in result.stdout  # the link was followed
    assert service.stop() == 0
    assert '"status": 500' not in service.log()
