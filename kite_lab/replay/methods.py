"""The ``Kite`` methods for cassettes and the call log, mixed into the facade.

Why a mixin: the facade stays one small module while each capability keeps its public
methods next to its implementation; the methods name a host Protocol, not ``Kite``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    from kite_lab.core.config import KiteSettings
    from kite_lab.log.stage import CallLog
    from kite_lab.observability.otel import OtelBridge
    from kite_lab.observability.trace_view import TraceView

    from .cassette import Cassette

__all__ = ["RecordingHost", "RecordingMethods"]


class _Pipeline(Protocol):
    @property
    def call_log(self) -> CallLog | None: ...


class RecordingHost(Protocol):
    """What these methods use of the facade."""

    @property
    def settings(self) -> KiteSettings: ...

    @property
    def pipeline(self) -> _Pipeline: ...


class RecordingMethods:
    """``ai.cassette``, ``ai.call_log``, ``ai.trace``."""

    def _recording_host(self) -> RecordingHost:
        return cast(RecordingHost, self)

    def cassette(self, path: str | Path, mode: str = "once", *,
                 speed: float = math.inf) -> Cassette:
        """Record this Kite's LLM calls to ``path`` (JSONL) or replay them from it.

        ``with ai.cassette(path, mode="once"):`` or ``@ai.cassette(path)``; modes:
        ``record``, ``replay`` (a request not recorded raises ``CassetteMiss``), ``once``
        (replay what is recorded, record the rest), ``off``. Streams replay their chunks
        with the recorded spacing divided by ``speed`` (default: instantly).
        """
        from .cassette import Cassette

        stack = self.__dict__.setdefault("_kite_cassettes", [])
        return Cassette(path, mode, speed=speed, stack=stack)

    def stop_cassette(self) -> Cassette:
        """Stop the latest cassette started on this Kite (``%kite cassette off``)."""
        started = self.__dict__.get("_kite_cassettes") or []
        if not started:
            from kite_lab.core.errors import InvalidInput

            raise InvalidInput("no cassette is running on this Kite")
        cassette: Cassette = started[-1]
        cassette.stop()
        return cassette

    def active_cassette(self) -> Cassette | None:
        """The cassette answering calls now: this Kite's, the process's or KITE_CASSETTE's."""
        from .active import active_cassette

        return active_cassette(self.__dict__, self._recording_host().settings)

    @property
    def call_log(self) -> CallLog | None:
        """The persistent call log (None with KITE_CALL_LOG=none); ``flush()``, ``stats()``."""
        return self._recording_host().pipeline.call_log

    def enable_otel(self, endpoint: str | None = None, *, tracer_provider: Any = None
                    ) -> OtelBridge:
        """OpenTelemetry spans for this Kite's calls, agent runs, tool calls and map rows,
        exported over OTLP/HTTP to ``endpoint`` (default: OTEL_EXPORTER_OTLP_ENDPOINT) and
        never without one; needs ``pip install 'kite-lab[otel]'``. Idempotent."""
        from kite_lab.observability.otel import enable_otel

        bridge = self.__dict__.get("_kite_otel")
        if bridge is None:
            host = cast(Any, self)
            bridge = enable_otel(host.event_bus, endpoint=endpoint or
                                 self._recording_host().settings.otel_exporter_otlp_endpoint,
                                 tracer_provider=tracer_provider)
            self.__dict__["_kite_otel"] = bridge
        return cast("OtelBridge", bridge)

    def attach_telemetry(self) -> None:
        """Called by the pipeline before its first call: spans when OTLP is configured."""
        if not self._recording_host().settings.otel_exporter_otlp_endpoint:
            return
        from kite_lab.core.errors import KiteError

        try:
            self.enable_otel()
        except KiteError as exc:  # telemetry is never why a call fails
            import warnings

            warnings.warn(f"no OpenTelemetry spans: {exc}", RuntimeWarning, stacklevel=2)

    def trace(self, source: Any = None) -> TraceView:
        """The span tree of an agent run (a RunResult, a run id) or of the latest run,
        read from the call log: steps, tools, tokens, cost, latency, cache hits.
        ``{"cell": cell_id}``: the calls and runs of one notebook cell."""
        log = self.call_log
        if log is None:
            from kite_lab.core.errors import ConfigError

            raise ConfigError("ai.trace reads the call log, which is off (KITE_CALL_LOG=none)")
        from kite_lab.observability.trace_view import TraceView

        log.flush()
        return TraceView.of(log.store, source)
