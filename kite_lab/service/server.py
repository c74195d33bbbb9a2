"""``kite-lab serve``: run the service under uvicorn, one or several worker processes.

What this adds over calling uvicorn directly:
- JSON-lines logs for uvicorn and kite_lab at KITE_LOG_LEVEL (uvicorn's access log is
  replaced by the service's own ``http_request`` line, which has the request id);
- several workers share metrics through PROMETHEUS_MULTIPROC_DIR (a fresh temporary
  directory when unset), wiped at start so counters never resume from a previous run;
- uvicorn's X-Forwarded-For rewriting is off: the service trusts the header only from
  KITE_TRUSTED_PROXIES;
- the port opens at once; /health answers "starting" (503) until the provider SDK and
  components are loaded off the event loop (``kite_lab.service.warmup``);
- SIGTERM/SIGINT drain in-flight requests (``kite_lab.service.shutdown``), exit code 0.

Workers are separate processes that import the app from an import string, so the
``--app`` target travels to them in the KITE_SERVE_APP environment variable.
"""

from __future__ import annotations

import logging
import os
import tempfile
from typing import Any

from kite_lab.core.errors import ConfigError

__all__ = ["app_factory", "import_target", "serve"]

TARGET_ENV = "KITE_SERVE_APP"
log = logging.getLogger("kite_lab.service")


def app_factory() -> Any:
    """The app for KITE_SERVE_APP (uvicorn ``--factory`` entry point of every worker)."""
    return import_target(os.environ.get(TARGET_ENV) or None)


def serve(
    app: str | None = None, host: str = "127.0.0.1", port: int = 8000, workers: int = 1
) -> int:
    """Serve until SIGTERM/SIGINT; the process exit code (0 after a graceful shutdown).

    ``app``: what to serve (see ``import_target``): None for ``Kite()`` from the
    environment, ``module`` / ``file.py`` for an exported notebook's agents, or
    ``module:attr`` for an app, a Kite or a factory.
    """
    import uvicorn

    from kite_lab.core.config import load_settings
    from kite_lab.observability.logging import configure_logging, uvicorn_log_config
    from kite_lab.observability.multiprocess import wipe_multiprocess_dir

    if workers < 1:
        raise ValueError("workers must be >= 1")
    settings = load_settings()
    configure_logging(settings.kite_log_level)
    if app:
        os.environ[TARGET_ENV] = app
    else:
        os.environ.pop(TARGET_ENV, None)
    multiproc = settings.prometheus_multiproc_dir or os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if workers > 1 and not multiproc:
        multiproc = tempfile.mkdtemp(prefix="kite-metrics-")
    if multiproc:
        wipe_multiprocess_dir(multiproc)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = multiproc  # before prometheus_client loads
    log.info(
        "serve",
        extra={
            "event": "serve",
            "host": host,
            "port": port,
            "workers": workers,
            "app": app or "kite_lab (Kite from the environment)",
            "metrics_dir": multiproc,
        },
    )
    try:
        uvicorn.run(
            "kite_lab.service.server:app_factory",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=uvicorn_log_config(settings.kite_log_level),
            access_log=False,
            proxy_headers=False,
            server_header=False,
            lifespan="on",
            # the app drains for KITE_SHUTDOWN_GRACE_SECONDS before uvicorn's own shutdown
            timeout_graceful_shutdown=2,
            timeout_keep_alive=5,
        )
    except SystemExit as exc:  # uvicorn exits 3 when the app fails to start
        return int(exc.code or 0) if isinstance(exc.code, int) else 1
    return 0


def import_target(target: str | None) -> Any:
    """An ASGI app for TARGET (the forms are listed in ``kite_lab.service.loader``)."""
    from kite_lab.kite import Kite
    from kite_lab.service.app import create_app
    from kite_lab.service.loader import load_module

    if not target:
        return create_app()
    module_name, _, attr = target.partition(":")
    module = load_module(module_name)
    if not attr:
        return create_app(agents_module=module)
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"--app {target}: {module_name} has no attribute {attr!r}") from None
    if isinstance(obj, Kite):
        return create_app(kite=obj, agents_module=module)
    if _is_asgi_app(obj):
        return obj
    if callable(obj):
        made = obj()
        if isinstance(made, Kite):
            return create_app(kite=made, agents_module=module)
        if _is_asgi_app(made):
            return made
    raise ConfigError(
        f"--app {target}: {attr} is neither an ASGI app, a Kite, nor a factory of one"
    )


def _is_asgi_app(obj: Any) -> bool:
    try:
        from starlette.applications import Starlette
    except ImportError:  # pragma: no cover
        return False
    return isinstance(obj, Starlette)
