"""The deployment files at the repo root match the deployment guide and each other.

There is no Docker engine here: the files are parsed and cross-checked, and what they
point at (the health route, metric names, the dashboard's datasource) is checked against
the real app.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from dotenv import dotenv_values
from guide_contract import GUIDE_VARIABLES

from kite_lab.core.config import KiteSettings

ROOT = Path(__file__).resolve().parents[2]

GUIDE_SERVICES = {"kite", "redis", "postgres", "prometheus", "grafana"}
GUIDE_VOLUMES = {"redis_data", "postgres_data", "prometheus_data", "grafana_data"}
GUIDE_PORTS = {
    "kite": "8000:8000",
    "redis": "6379:6379",
    "prometheus": "9090:9090",
    "grafana": "3000:3000",
}
GUIDE_IMAGES = {
    "redis": "redis:7-alpine",
    "postgres": "postgres:15-alpine",
    "prometheus": "prom/prometheus:latest",
    "grafana": "grafana/grafana:latest",
}
CHECKLIST = [
    "Environment variables configured",
    "API keys secured (not in code)",
    "Circuit breakers enabled",
    "Idempotency configured",
    "Monitoring setup (Prometheus + Grafana)",
    "Logging configured",
    "Health checks implemented",
    "Rate limiting enabled",
    "Input validation added",
    "Error handling implemented",
    "Graceful shutdown configured",
    "Backup strategy defined",
    "Scaling plan documented",
]
KEY_METRICS = [
    "LLM call rate",
    "LLM latency",
    "Circuit breaker state",
    "Agent success rate",
    "Memory usage",
    "Error rate",
]

_VAR = re.compile(r"\$\{([A-Z0-9_]+)(?::-([^}]*))?\}")


def interpolate(text: str) -> str:
    """Compose's ${VAR:-default} with an empty environment."""
    return _VAR.sub(lambda m: m.group(2) or "", text)


def env_list(items: list[str]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in items)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


def test_compose_has_the_guides_services_ports_and_variables(compose):
    services = compose["services"]
    assert set(services) == GUIDE_SERVICES
    assert GUIDE_VOLUMES <= set(compose["volumes"])
    for name, port in GUIDE_PORTS.items():
        assert port in [interpolate(p) for p in services[name]["ports"]], name
    for name, image in GUIDE_IMAGES.items():
        assert services[name]["image"] == image
    for name, service in services.items():
        assert service["restart"] == "unless-stopped", name
    kite = services["kite"]
    assert kite["build"] == "." and kite["env_file"] == ".env"
    assert set(kite["depends_on"]) == {"redis", "postgres"}
    env = {k: interpolate(v) for k, v in env_list(kite["environment"]).items()}
    assert env["LLM_PROVIDER"] == "openai" and "OPENAI_API_KEY" in env
    assert env["REDIS_URL"] == "redis://redis:6379"
    assert env["POSTGRES_URL"] == "postgresql://postgres:password@postgres:5432/kite"
    postgres = {k: interpolate(v) for k, v in env_list(services["postgres"]["environment"]).items()}
    assert postgres == {"POSTGRES_DB": "kite", "POSTGRES_PASSWORD": "password"}
    grafana = {k: interpolate(v) for k, v in env_list(services["grafana"]["environment"]).items()}
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"] == "admin"
    assert services["grafana"]["depends_on"] == ["prometheus"]
    assert "./prometheus.yml:/etc/prometheus/prometheus.yml" in services["prometheus"]["volumes"]
    assert "redis_data:/data" in services["redis"]["volumes"]
    assert "postgres_data:/var/lib/postgresql/data" in services["postgres"]["volumes"]


def test_every_compose_variable_is_a_setting(compose):
    known = {name.upper() for name in KiteSettings.model_fields}
    kite_env = env_list(compose["services"]["kite"]["environment"])
    assert set(kite_env) <= known


def test_env_example_documents_every_variable():
    path = ROOT / ".env.example"
    text = path.read_text(encoding="utf-8")
    for name in GUIDE_VARIABLES:
        assert re.search(rf"^#?\s*{name}=", text, re.M), name
    service_settings = [
        n.upper()
        for n in KiteSettings.model_fields
        if n.startswith("kite_") and n not in ("kite_redis_prefix",)
    ]
    for name in service_settings:
        assert re.search(rf"^#?\s*{name}=", text, re.M), name
    values = dotenv_values(path)
    known = {n.upper() for n in KiteSettings.model_fields}
    compose_only = {"POSTGRES_PASSWORD", "GF_SECURITY_ADMIN_PASSWORD"}
    assert set(values) <= known | compose_only
    settings = KiteSettings(_env_file=str(path))  # every value parses
    assert settings.kite_rate_limit == "10/minute" and settings.kite_max_prompt_chars == 10_000


def test_dockerfile_is_slim_non_root_and_health_checked():
    from kite_lab.service.app import create_app

    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    bases = re.findall(r"^FROM (\S+)", text, re.M)
    assert bases and all(b.endswith("-slim") for b in bases)
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    health = re.search(r"^HEALTHCHECK .*?CMD (.+?)$", text, re.M | re.S)
    assert health is not None
    url = re.search(r"http://127\.0\.0\.1:8000(/[a-z]+)", text)
    assert url is not None and url.group(1) == "/health"
    app = create_app(__import__("kite_lab").Kite(config={"llm_provider": "openai"}, env_file=None))
    assert "/health" in app.state.kite_service.routes.templates
    assert app.state.kite_service.is_public("/health")
    cmd = re.search(r"^CMD (.+)$", text, re.M).group(1)
    assert "kite-lab serve" in cmd and "--host 0.0.0.0" in cmd and "--port 8000" in cmd
    assert re.search(r"^EXPOSE 8000$", text, re.M) and re.search(
        r"^STOPSIGNAL SIGTERM$", text, re.M
    )
    assert "[service]" in text  # installs the service extra
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert ".env" in ignored and ".venv" in ignored


def test_prometheus_targets_the_compose_service(compose):
    config = yaml.safe_load((ROOT / "prometheus.yml").read_text(encoding="utf-8"))
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "kite")
    host, port = job["static_configs"][0]["targets"][0].split(":")
    assert host in compose["services"] and f"{port}:{port}" in compose["services"]["kite"]["ports"]


def test_grafana_provisioning_and_dashboard():
    from prometheus_client.parser import text_string_to_metric_families

    from kite_lab.observability.metrics import KiteMetrics

    datasource = yaml.safe_load(
        (ROOT / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    ds = datasource["datasources"][0]
    assert ds["type"] == "prometheus" and ds["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/kite.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/kite_dashboard.json:{path}/kite_dashboard.json" in mounts
    assert "./grafana/provisioning:/etc/grafana/provisioning" in mounts

    dashboard = json.loads((ROOT / "grafana/kite_dashboard.json").read_text())
    titles = [p["title"] for p in dashboard["panels"]]
    for wanted in KEY_METRICS:
        assert wanted in titles
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == ds["uid"]
    exposed = set()
    from prometheus_client import CollectorRegistry

    metrics = KiteMetrics(CollectorRegistry())
    for family in text_string_to_metric_families(metrics.render()[0].decode()):
        exposed |= {family.name, family.name + "_total", family.name + "_bucket"}
    used = {
        name
        for p in dashboard["panels"]
        for t in p["targets"]
        for name in re.findall(r"\bkite_[a-z_]+", t["expr"])
    }
    assert used and used <= exposed, used - exposed


def test_nginx_config_is_the_guides_least_conn_over_three_replicas():
    text = (ROOT / "deploy/nginx.conf").read_text(encoding="utf-8")
    upstream = re.search(r"upstream kite_backend \{(.*?)\}", text, re.S).group(1)
    assert "least_conn;" in upstream
    assert re.findall(r"server (kite\d):8000", upstream) == ["kite1", "kite2", "kite3"]
    assert re.search(r"listen 80;", text) and "proxy_pass http://kite_backend;" in text
    scale = yaml.safe_load((ROOT / "deploy/docker-compose.scale.yml").read_text())
    assert {"kite1", "kite2", "kite3", "nginx"} <= set(scale["services"])


def test_deployment_doc_covers_the_checklist():
    doc = (ROOT / "docs/deployment.md").read_text(encoding="utf-8")
    for item in CHECKLIST:
        assert item in doc, item
    for needle in (
        "pg_dump",
        "kite_backup.py",
        "restore",
        "KITE_HOME",
        "replicas",
        "least_conn",
        "KITE_TRUSTED_PROXIES",
        "SIGTERM",
        "PROMETHEUS_MULTIPROC_DIR",
    ):
        assert needle in doc, needle
    from kite_lab.cli import build_parser

    serve = build_parser()._subparsers._group_actions[0].choices["serve"]
    options = {o for action in serve._actions for o in action.option_strings}
    flags = {
        f
        for line in re.findall(r"kite-lab serve[^\n`]*", doc)
        for f in re.findall(r"--[a-z]+", line)
    }
    assert flags and flags <= options, flags - options
