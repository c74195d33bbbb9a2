"""The replay and log stages wired around a real CallPipeline, as the pipeline will wire them.

Until kite_lab/pipeline.py calls the stages itself (see docs/calllog.md, "Pipeline
hook"), tests install this subclass on a real Kite: every call still goes through the
real kill switch, cache, breaker, provider SDK and accounting.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from kite_lab.log import CallLogStage, build_call_log
from kite_lab.replay import CassetteStage, build_cassette_stage

from kite_lab import Kite
from kite_lab.core.types import Completion, StreamChunk
from kite_lab.pipeline import CallPipeline


class StagedPipeline(CallPipeline):
    def __init__(self, parts: Any, log: CallLogStage | None, replay: CassetteStage | None):
        super().__init__(parts)
        self.log, self.replay = log, replay

    async def generate(self, provider: Any, request: Any, *, cache: bool | None = None) -> Completion:
        async def rest() -> Completion:
            completion = await super(StagedPipeline, self).generate(provider, request, cache=cache)
            if completion.cached and self.log is not None:
                self.log.record(provider, request, request_id=uuid.uuid4().hex, completion=completion)
            return completion

        if self.replay is None:
            return await rest()
        return await self.replay.generate(request, provider, rest)

    async def _call(self, provider: Any, request: Any) -> Completion:
        started, request_id = time.time(), uuid.uuid4().hex
        try:
            completion = await super()._call(provider, request)
        except Exception as exc:
            if self.log is not None:
                self.log.record(provider, request, request_id=request_id, started=started,
                                error=exc, latency_s=time.time() - started)
            raise
        if self.log is not None:
            self.log.record(provider, request, request_id=request_id, started=started,
                            completion=completion)
        return completion

    async def stream(self, provider: Any, request: Any, *, cache: bool | None = None
                     ) -> AsyncIterator[StreamChunk]:
        def rest() -> AsyncIterator[StreamChunk]:
            return self._logged_stream(provider, request, cache)

        source = rest() if self.replay is None else self.replay.stream(request, provider, rest)
        async for chunk in source:
            yield chunk

    async def _logged_stream(self, provider: Any, request: Any, cache: bool | None
                             ) -> AsyncIterator[StreamChunk]:
        started, request_id = time.time(), uuid.uuid4().hex
        async for chunk in super().stream(provider, request, cache=cache):
            if chunk.completion is not None and self.log is not None:
                self.log.record(provider, request, request_id=request_id, started=started,
                                completion=chunk.completion, stream=True)
            yield chunk


def install(ai: Kite, *, log: bool = True) -> tuple[CallLogStage | None, CassetteStage]:
    """Put the stages on ``ai`` (built from its settings, as the facade will)."""
    log_stage = build_call_log(ai.settings, ai.event_bus) if log else None
    replay_stage = build_cassette_stage(ai.settings, ai.event_bus, owner=ai)
    ai._pipeline = StagedPipeline(ai, log_stage, replay_stage)
    return log_stage, replay_stage
