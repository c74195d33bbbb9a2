"""``--service``: the exported module is what ``kite-lab serve --app MODULE:app`` runs, and
it serves the notebook's agents at /agents/{name}/run (a real server, real HTTP)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from export_helpers import ruff_problems, write_notebook

from kite_lab.notebook.export import export_notebook

KITE_BIN = str(Path(sys.executable).with_name("kite-lab"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_service_module_serves_the_notebooks_agents(tmp_path: Path, fake_llm: Any) -> None:
    notebook = write_notebook(
        tmp_path / "agents.ipynb", "%load_ext kite_lab",
        "from kite_lab import Kite\nfrom kite_lab.notebook import use\n\nai = use(Kite())\n"
        "helper = ai.create_agent(\"helper\", \"Be brief.\")",
        "%%kite agent:helper -o first\nhello from the notebook",
    )
    script = export_notebook(notebook, tmp_path / "svc.py", service=True)
    assert script.rstrip().endswith("app = agents_app(ai, __name__)")
    assert "kite-lab serve --app MODULE:app" in script
    assert not ruff_problems(tmp_path / "svc.py")

    port = _free_port()
    env = {**os.environ, "LLM_PROVIDER": "openai", "LLM_MODEL": "gpt-4o-mini",
           "OPENAI_API_KEY": "sk-export-service-0123456789",
           "OPENAI_BASE_URL": fake_llm.openai_base_url, "KITE_HOME": str(tmp_path / "home"),
           "KITE_RATE_LIMIT": "off"}
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([KITE_BIN, "serve", "--app", f"{tmp_path / 'svc.py'}:app",
                             "--port", str(port)], env=env, cwd=tmp_path, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                httpx.get(base + "/health", timeout=1.0)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                time.sleep(0.1)
        listed = httpx.get(base + "/agents", timeout=10).json()
        assert [a["name"] for a in listed] == ["helper"]
        reply = httpx.post(base + "/agents/helper/run", json={"input": "hi there"}, timeout=30)
        assert reply.status_code == 200, reply.text
        assert reply.json()["response"] == "Echo: hi there"
        sent = [r.last_user_text for r in fake_llm.requests]
        assert sent == ["hello from the notebook", "hi there"]  # the cell ran at import
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
