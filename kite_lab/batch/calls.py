"""What one row's call is: the arguments of a map and the coroutine that asks for a row.

Shared by the asyncio engine (``mapping``) and the Ray tasks (``ray_engine``), which build
the same call on their own Kite; both go through ``host.agenerate`` (or the agent's
``run``), so the pipeline -- cache, breaker, kill switch, metrics, events -- applies.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from kite_lab.batch.runner import RowFailed, RowResult
from kite_lab.core.errors import InvalidInput

if TYPE_CHECKING:
    from kite_lab.agents.base import Agent
    from kite_lab.core.config import KiteSettings
    from kite_lab.core.events import EventBus
    from kite_lab.core.types import Completion
    from kite_lab.providers.base import LLMProvider, LLMRequest

__all__ = ["BatchHost", "MapArgs", "agent_call", "model_call", "schema_kwargs"]


class BatchHost(Protocol):
    """What ``ai.map`` uses of the Kite it runs on."""

    @property
    def settings(self) -> KiteSettings: ...

    @property
    def event_bus(self) -> EventBus: ...

    def build_request(
        self, prompt: str | None = None, **kwargs: Any
    ) -> tuple[LLMProvider, LLMRequest]: ...

    async def agenerate(
        self, prompt: str | None = None, *, cache: bool | None = None, **kwargs: Any
    ) -> Completion: ...


@dataclass
class MapArgs:
    """The arguments of one ``ai.map`` call, as given."""

    data: Any
    prompt: Any
    model: str | None = None
    system: str | None = None
    schema: Any = None
    concurrency: int = 16
    budget_usd: float | None = None
    checkpoint: Any = None
    retries: int = 2
    progress: bool = True
    output: str = "answer"
    engine: str = "asyncio"
    strict: bool = False
    dry_run: bool = False
    params: dict[str, Any] | None = None


def schema_kwargs(host: BatchHost, schema: Any) -> dict[str, Any]:
    if schema is None:
        return {}
    if "schema" not in inspect.signature(host.build_request).parameters:
        raise InvalidInput(
            "schema= needs structured output, which this kite_lab build does not have yet; "
            "map without schema= and parse the answers"
        )
    return {"schema": schema}


def agent_call(agent: Agent) -> Any:
    async def call(prompt: str) -> RowResult:
        result = await agent.run(prompt)
        if not result.success:
            raise RowFailed(result.error_type, result.error, result.retry_after)
        tokens = result.prompt_tokens + result.completion_tokens
        return RowResult(output=result.response, cost_usd=result.cost_usd, total_tokens=tokens)

    return call


def model_call(host: BatchHost, args: MapArgs, params: dict[str, Any], cache: Any) -> Any:
    kwargs = {"model": args.model, "system": args.system, **schema_kwargs(host, args.schema),
              **params}
    structured = args.schema is not None  # the answer is completion.parsed

    async def call(prompt: str) -> RowResult:
        completion = await host.agenerate(prompt, cache=cache, **kwargs)
        return RowResult(
            output=_parsed(completion) if structured else completion.text,
            cost_usd=completion.cost_usd,
            total_tokens=completion.usage.total_tokens,
            cached=completion.cached,
        )

    return call


def _parsed(completion: Any) -> Any:
    """``completion.parsed`` as plain JSON values (pydantic models dumped)."""
    parsed = getattr(completion, "parsed", None)
    if parsed is None:
        raise ValueError("the answer has no parsed output for schema=")
    return _plain(parsed)


def _plain(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
