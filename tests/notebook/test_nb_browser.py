"""JupyterLab in a real browser: the widgets render and the Reset button works.

JupyterLab runs on 127.0.0.1 with a token; Playwright for Python drives Debian's
/usr/bin/chromium (never ``playwright install``). Skipped with a reason when chromium or
playwright is absent, failed instead under KITE_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]

NOTEBOOK_CELLS = [
    "%load_ext kite_lab",
    """
from kite_lab import Kite
from kite_lab.notebook import use
from kite_lab.notebook.widgets import AgentRunWidget, BreakerInspector
from kite_lab.testing import FakeLLMServer, Reply, ToolCallSpec

server = FakeLLMServer().start()
ai = use(Kite(config={"llm_provider": "openai", "openai_api_key": "sk-fake-browser-key",
                      "openai_base_url": server.openai_base_url}))
agent = ai.create_agent("calc", "You compute.", tools=["calculator"])
server.enqueue(Reply(tool_calls=[ToolCallSpec("calculator", {"expression": "6*7"})]),
               Reply(text="The answer is 42."))
run_widget = AgentRunWidget(agent)
run_widget.run("What is 6*7?")
run_widget""",
    """
ai.circuit_breaker.trip("browser test")
inspector = BreakerInspector(ai)
inspector""",
]


def _unavailable(reason: str) -> None:
    if os.environ.get("KITE_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} and KITE_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A JupyterLab server over ``tmp_path/work`` holding the widget notebook."""
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is not installed (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("playwright (the Python package) is not installed")
    work = tmp_path / "work"
    work.mkdir()
    book = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(src.strip()) for src in NOTEBOOK_CELLS])
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                   "language": "python"}
    nbformat.write(book, work / "widgets.ipynb")
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "KITE_HOME": str(tmp_path / "kite-home"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "lab-settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "lab-workspaces")}
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
               f"--port={port}", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={work}", "--LabApp.expose_app_in_browser=True",
               "--LabApp.news_url=", "--LabApp.extension_manager=readonly",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    log = (tmp_path / "lab.log").open("w")
    server = subprocess.Popen(command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("JupyterLab did not start:\n" + (tmp_path / "lab.log").read_text())
                time.sleep(0.3)
        yield f"{base}/lab/tree/widgets.ipynb?token={token}", tmp_path
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def test_widgets_render_and_reset_changes_the_badge(lab: tuple[str, Path]) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, tmp_path = lab
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            page.goto(url)
            page.wait_for_function(
                "() => window.jupyterapp && document.querySelector('.jp-NotebookPanel')",
                timeout=60_000)
            page.wait_for_function(  # the kernel is connected and idle
                "() => { const w = window.jupyterapp.shell.currentWidget;"
                " return w && w.sessionContext && w.sessionContext.session"
                " && w.sessionContext.session.kernel"
                " && w.sessionContext.session.kernel.status === 'idle'; }",
                timeout=60_000)
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")

            run_widget = page.locator(".kite-agent-run")
            expect(run_widget).to_be_visible(timeout=60_000)
            expect(run_widget.locator(".kite-status")).to_contain_text("done", timeout=30_000)
            expect(run_widget.locator(".kite-timeline")).to_contain_text("calculator")
            expect(run_widget).to_contain_text("The answer is 42.")

            inspector = page.locator(".kite-breaker-inspector")
            expect(inspector).to_be_visible(timeout=60_000)
            badge = inspector.locator(".kite-badge")
            expect(badge).to_have_text("open", timeout=30_000)
            inspector.locator("button.widget-button", has_text="Reset").click()
            expect(badge).to_have_text("closed", timeout=30_000)
            page.screenshot(path=str(tmp_path / "jupyterlab.png"), full_page=True)
        finally:
            browser.close()
    assert (tmp_path / "jupyterlab.png").stat().st_size > 10_000
