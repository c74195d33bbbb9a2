"""Debian's Prometheus against the project's files and a running service.

- ``promtool check config`` accepts prometheus.yml; ``promtool check metrics`` accepts
  the /metrics output;
- a real Prometheus, configured from prometheus.yml (only the target and the scrape
  interval changed), scrapes a running service, and every PromQL expression of
  grafana/kite_dashboard.json returns data through its HTTP API.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import free_port, need_binary

from kite_lab.testing import Fault

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
AGENTS_MODULE = '''
"""An exported notebook: its Kite and agents are what the service serves."""
from kite_lab import Kite

ai = Kite()
helper = ai.create_agent("helper", "You are concise.")
'''


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((ROOT / "grafana" / "kite_dashboard.json").read_text(encoding="utf-8"))
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_promtool_accepts_prometheus_yml():
    promtool = need_binary("/usr/bin/promtool", "prometheus")
    result = subprocess.run(
        [promtool, "check", "config", str(ROOT / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load((ROOT / "prometheus.yml").read_text(encoding="utf-8"))
    kite_job = next(j for j in config["scrape_configs"] if j["job_name"] == "kite")
    assert kite_job["static_configs"][0]["targets"] == ["kite:8000"]
    assert kite_job.get("metrics_path", "/metrics") == "/metrics"


def traffic(client: httpx.Client, fake) -> None:
    """Every kind of event the dashboard plots."""
    for i in range(3):
        assert client.post("/complete", json={"prompt": f"hello {i}"}).status_code == 200
    for _ in range(2):  # a cache miss, then a hit (temperature 0 is cached)
        assert (
            client.post("/complete", json={"prompt": "cached", "temperature": 0}).status_code == 200
        )
    fake.enqueue(Fault(status=500))
    assert client.post("/complete", json={"prompt": "fails"}).status_code == 502
    assert client.post("/agents/helper/run", json={"input": "hi"}).status_code == 200
    for _ in range(2):  # /chat is limited to 1/minute: the second is rejected
        client.post("/chat", json={"messages": [{"role": "user", "content": "hi"}]})


def test_prometheus_scrapes_the_service_and_the_dashboard_queries_return_data(
    service_env, start_service, fake_llm, tmp_path
):
    promtool = need_binary("/usr/bin/promtool", "prometheus")
    prometheus = need_binary("/usr/bin/prometheus", "prometheus")
    (tmp_path / "exported_notebook.py").write_text(AGENTS_MODULE, encoding="utf-8")
    service_env.update(
        KITE_RATE_LIMIT="1000/minute, /chat=1/minute", CIRCUIT_BREAKER_THRESHOLD="1000"
    )
    service = start_service(service_env, app="exported_notebook")
    client = httpx.Client(base_url=service.url, timeout=10)
    traffic(client, fake_llm)

    exposition = client.get("/metrics").text
    lint = subprocess.run(
        [promtool, "check", "metrics"], input=exposition, capture_output=True, text=True, timeout=30
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr

    config = yaml.safe_load((ROOT / "prometheus.yml").read_text(encoding="utf-8"))
    config["global"]["scrape_interval"] = "1s"
    port = free_port()
    for job in config["scrape_configs"]:
        targets = job["static_configs"][0]["targets"]
        job["static_configs"][0]["targets"] = [
            f"127.0.0.1:{service.port}" if t == "kite:8000" else f"127.0.0.1:{port}"
            for t in targets
        ]
    config_path = tmp_path / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    check = subprocess.run(
        [promtool, "check", "config", str(config_path)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            prometheus,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    api = f"http://127.0.0.1:{port}/api/v1"
    try:
        deadline = time.monotonic() + 45

        def scrapes() -> int:
            """Successful scrapes of the service so far."""
            query = 'sum_over_time(up{job="kite"}[5m])'
            try:
                r = httpx.get(f"{api}/query", params={"query": query}, timeout=2)
                result = r.json()["data"]["result"]
                return int(float(result[0]["value"][1])) if result else 0
            except (httpx.TransportError, KeyError, ValueError):
                return 0

        def wait_for_scrapes(count: int) -> None:
            while scrapes() < count:
                assert time.monotonic() < deadline, (tmp_path / "prometheus.log").read_text()
                time.sleep(0.2)

        wait_for_scrapes(2)
        traffic(client, fake_llm)  # more traffic between scrapes: rates are not zero
        wait_for_scrapes(scrapes() + 2)

        empty = []
        for expr in dashboard_expressions():
            query = expr.replace("$__rate_interval", "1m")
            r = httpx.get(f"{api}/query", params={"query": query}, timeout=5)
            body = r.json()
            assert body["status"] == "success", (query, body)
            if not body["data"]["result"]:
                empty.append(query)
        assert empty == [], f"dashboard queries without data: {empty}"
    finally:
        client.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
