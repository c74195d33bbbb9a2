"""``kite-lab doctor``: what this environment would do, and what is broken, without secrets."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from kite_lab.core.config import load_settings, mask_url
from kite_lab.core.errors import KiteError

__all__ = ["run_doctor"]


def _reachable(url: str, default_port: int) -> tuple[bool, str]:
    parts = urlsplit(url)
    host, port = parts.hostname or "localhost", parts.port or default_port
    try:
        with socket.create_connection((host, port), timeout=2):
            return True, f"{host}:{port} answers"
    except OSError as exc:
        return False, f"cannot connect to {host}:{port} ({exc.strerror or exc})"


def run_doctor() -> int:
    problems = 0

    def report(ok: bool, what: str, detail: str) -> None:
        nonlocal problems
        problems += 0 if ok else 1
        print(f"[{'ok' if ok else 'FAIL'}] {what}: {detail}")

    try:
        settings = load_settings()
    except KiteError as exc:
        report(False, "settings", str(exc))
        return 1
    report(True, "settings", "loaded from environment and .env")

    from kite_lab.providers.registry import available_providers, resolve_model

    try:
        provider, model = resolve_model(None, settings)
        report(True, "LLM provider", f"{provider}/{model}")
    except KiteError as exc:
        report(False, "LLM provider", str(exc))
    print(f"       registered providers: {', '.join(available_providers())}")

    for kind in ("cache", "breaker", "idempotency"):
        try:
            print(f"       {kind} backend: {settings.resolved_backend(kind)}")
        except KiteError as exc:
            report(False, f"{kind} backend", str(exc))

    if settings.redis_url:
        ok, detail = _reachable(settings.redis_url, 6379)
        report(ok, f"Redis {mask_url(settings.redis_url)}", detail)
    if settings.postgres_url:
        try:
            from kite_lab.memory.sessions import check_database

            ok, detail = check_database(settings)
        except ImportError:
            ok, detail = _reachable(settings.postgres_url, 5432)
        report(ok, f"Postgres {mask_url(settings.postgres_url)}", detail)
    else:
        print(f"       sessions: SQLite under {settings.kite_home}")

    print(f"\n{'no problems found' if not problems else f'{problems} problem(s) found'}")
    return 1 if problems else 0
