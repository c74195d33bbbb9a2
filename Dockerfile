# kite_lab service image: slim, non-root, health-checked, `kite-lab serve`.
#   docker build -t kite-lab .
#   docker run --env-file .env -p 8000:8000 kite-lab

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY kite_lab ./kite_lab
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[service]"

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    KITE_HOME=/data \
    PROMETHEUS_MULTIPROC_DIR=/tmp/kite-metrics \
    KITE_WORKERS=2
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin kite \
 && mkdir -p /data /tmp/kite-metrics \
 && chown kite:kite /data /tmp/kite-metrics
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER kite
WORKDIR /home/kite
EXPOSE 8000
VOLUME ["/data"]
# /health is public even with KITE_API_KEYS; it answers 503 while unhealthy or draining.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4).status == 200 else 1)"]
# SIGTERM drains in-flight requests for KITE_SHUTDOWN_GRACE_SECONDS, then exits 0.
STOPSIGNAL SIGTERM
CMD ["sh", "-c", "exec kite-lab serve --host 0.0.0.0 --port 8000 --workers ${KITE_WORKERS}"]
