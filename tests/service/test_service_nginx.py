"""deploy/nginx.conf in front of three real replicas: requests spread; one dies, traffic goes on.

nginx (Debian's package) runs unprivileged on an ephemeral port with a copy of the
project's config in which only the environment differs: upstream hosts become local
ports, log and temp paths move into a temporary directory.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from conftest import free_port, need_binary
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
NGINX = "/usr/sbin/nginx"


def local_config(ports: list[int], listen: int, workdir: Path) -> str:
    """The project's nginx.conf with local upstreams, listen port and paths."""
    text = (ROOT / "deploy" / "nginx.conf").read_text(encoding="utf-8")
    servers = re.findall(r"server (kite\d):8000", text)
    assert servers == ["kite1", "kite2", "kite3"], "three replicas in the upstream"
    for name, port in zip(servers, ports, strict=True):
        text = text.replace(f"server {name}:8000", f"server 127.0.0.1:{port}")
    text = text.replace("listen 80;", f"listen 127.0.0.1:{listen};")
    text = text.replace("/var/log/nginx/", f"{workdir}/")
    temp = "".join(
        f"    {kind}_temp_path {workdir}/{kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return text.replace("http {\n", "http {\n" + temp, 1)


def http_count(url: str) -> float:
    text = httpx.get(url + "/metrics", timeout=5).text
    return sum(
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "kite_http_requests_total" and s.labels.get("route") == "/complete"
    )


def test_nginx_spreads_load_and_survives_a_dead_replica(service_env, start_service, tmp_path):
    nginx = need_binary(NGINX, "nginx-light")
    service_env["KITE_TRUSTED_PROXIES"] = "127.0.0.1"
    replicas = [start_service(service_env, name=f"kite{i}", wait=False) for i in range(1, 4)]
    for replica in replicas:
        replica.wait_ready()
    workdir = tmp_path / "nginx"
    workdir.mkdir()
    listen = free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(local_config([r.port for r in replicas], listen, workdir), encoding="utf-8")
    globals_ = f"daemon off; pid {workdir}/nginx.pid;" + (
        " user root;" if os.geteuid() == 0 else ""
    )
    cmd = [
        nginx,
        "-p",
        str(workdir),
        "-c",
        str(conf),
        "-e",
        str(workdir / "error.log"),
        "-g",
        globals_,
    ]
    check = subprocess.run([*cmd, "-t"], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{listen}"
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(base + "/health", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, (workdir / "error.log").read_text()
                time.sleep(0.05)
        with httpx.Client(base_url=base, timeout=10) as client:
            for i in range(30):
                r = client.post(
                    "/complete", json={"prompt": f"spread {i}"}, headers={"X-Request-ID": f"n-{i}"}
                )
                assert r.status_code == 200 and r.headers["x-request-id"] == f"n-{i}"
            counts = [http_count(r.url) for r in replicas]
            assert sum(counts) == 30 and all(c >= 5 for c in counts), counts

            replicas[0].proc.send_signal(signal.SIGKILL)
            replicas[0].proc.wait(10)
            statuses = [
                client.post("/complete", json={"prompt": f"after {i}"}).status_code
                for i in range(30)
            ]
            assert statuses == [200] * 30
            survivors = [http_count(r.url) for r in replicas[1:]]
            assert sum(survivors) == sum(counts[1:]) + 30
            assert client.get("/health").json()["status"] == "healthy"
    finally:
        proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
