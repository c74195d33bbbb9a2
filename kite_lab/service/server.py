"""``kite-lab serve``: run the service under uvicorn, one or several worker processes.

What this adds over calling uvicorn directly:
- JSON-lines logs for uvicorn and kite_lab at KITE_LOG_LEVEL (uvicorn's access log is
  replaced by the service's own ``http_request`` line, which has the request id);
- several workers share metrics through PROMETHEUS_MULTIPROC_DIR (a fresh temporary
  directory when unset), wiped at start so counters never resume from a previous run;
- uvicorn's X-Forwarded-For rewriting is off: the service trusts the header only from
  KITE_TRUSTED_PROXIES;
- SIGTERM/SIGINT drain in-flight requests (``kite_lab.service.shutdown``), exit code 0.

Workers are separate processes that import the app from an import string, so the
``--app`` target travels to them in the KITE_SERVE_APP environment variable.
"""

from __future__ import annotations

import logging
import os
import tempfile
from typing import Any

__all__ = ["app_factory", "serve"]

TARGET_ENV = "KITE_SERVE_APP"
log = logging.getLogger("kite_lab.service")


def app_factory() -> Any:
    """The app for KITE_SERVE_APP (uvicorn ``--factory`` entry point of every worker)."""
    from kite_lab.service.loader import import_target

    return import_target(os.environ.get(TARGET_ENV) or None)


def serve(
    app: str | None = None, host: str = "127.0.0.1", port: int = 8000, workers: int = 1
) -> int:
    """Serve until SIGTERM/SIGINT; the process exit code (0 after a graceful shutdown).

    ``app``: what to serve (see ``kite_lab.service.loader``): None for ``Kite()`` from the
    environment, ``module`` / ``file.py`` for an exported notebook's agents, or
    ``module:attr`` for an app, a Kite or a factory.
    """
    import uvicorn

    from kite_lab.core.config import load_settings
    from kite_lab.observability.logging import configure_logging, uvicorn_log_config
    from kite_lab.observability.metrics import wipe_multiprocess_dir

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
