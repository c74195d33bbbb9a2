"""``RunState``: one agent run in progress -- its limits, accounting, events and result.

Why one state object shared by every agent type: limits (max_iterations, the kill
switch's cost / time / same-action limits), token and cost totals, events and the step
log must behave identically in the base loop, ReAct and plan-and-execute. Agent types
only decide *what* to ask the model; every model call goes through ``RunState.llm`` and
every tool call through ``RunState.run_tools``, so no loop can forget a limit.

It knows its agent through ``RunOwner`` (the attributes it reads), not the ``Agent``
class, so this module and ``agents.base`` do not import each other.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from kite_lab.core.errors import AgentLimitReached, KiteError, RateLimitError, redact
from kite_lab.core.types import Completion, Message, RunResult, ToolCall, canonical_json

from .guard import GuardOutcome, ToolGuard, describe_arguments

if TYPE_CHECKING:
    from kite_lab.safety.kill_switch import KillSwitch, KillSwitchLimits

    from .host import AgentHost

__all__ = ["PREVIEW_CHARS", "RunOwner", "RunState", "retry_after_of"]

log = logging.getLogger("kite_lab.agents")

#: characters of input / response kept in events unless KITE_LOG_PROMPTS=true
PREVIEW_CHARS = 200


class RunOwner(Protocol):
    """What a run reads from its agent (``Agent`` provides it)."""

    name: str
    kite: AgentHost
    model: str | None
    max_iterations: int
    guard: ToolGuard
    verbose: bool

    def _say(self, text: str) -> None: ...


class RunState:
    """One run in progress: its counters, limits and the RunResult being filled."""

    def __init__(self, agent: RunOwner) -> None:
        self.agent = agent
        self.kite = agent.kite
        self.run_id = uuid.uuid4().hex
        self.started = time.perf_counter()
        self.result = RunResult(agent=agent.name)
        self.switch: KillSwitch | None = None
        self._cost = 0.0
        self._cost_known = True
        self._last_action: str | None = None
        self._streak = 0
        self._secrets: list[str] | None = None

    # -- events ----------------------------------------------------------------------
    def emit(self, name: str, **data: Any) -> None:
        self.kite.event_bus.emit(name, agent=self.agent.name, run_id=self.run_id, **data)

    def preview(self, text: str, limit: int = PREVIEW_CHARS) -> str:
        if self.kite.settings.kite_log_prompts or len(text) <= limit:
            return text
        return text[: limit - 3] + "..."

    def step(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Append an entry to ``result.steps`` (every model call and context lookup)."""
        entry = {"kind": kind, **fields}
        self.result.steps.append(entry)
        return entry

    def secret_values(self) -> list[str]:
        """The Kite's secrets, looked up once per run and only when an error needs them."""
        if self._secrets is None:
            self._secrets = self.kite.settings.secret_values()
        return self._secrets

    # -- limits ----------------------------------------------------------------------
    @property
    def limits(self) -> KillSwitchLimits | None:
        """The kill switch's KillSwitchLimits (global, changeable while runs go on)."""
        return getattr(self.switch, "limits", None)

    def check_limits(self, *, next_call: bool = False, same_action: int = 0) -> None:
        """Raise AgentLimitReached when the run must stop before its next step."""
        if next_call and self.result.iterations >= self.agent.max_iterations:
            raise AgentLimitReached(
                f"max_iterations={self.agent.max_iterations} reached before a final answer; "
                "raise it or simplify the task"
            )
        limits = self.limits
        if limits is None:
            return
        reason = limits.exceeded(
            iterations=self.result.iterations if next_call else 0,
            cost_usd=self._cost,
            elapsed_s=time.perf_counter() - self.started,
            same_action=same_action,
        )
        if reason:
            raise AgentLimitReached(
                f"kill switch limit: {reason}; change ai.kill_switch.limits "
                "(None means no limit) to allow more"
            )

    def _remaining(self) -> float | None:
        limits = self.limits
        max_seconds = limits.max_seconds if limits is not None else None
        if max_seconds is None:
            return None
        remaining = max_seconds - (time.perf_counter() - self.started)
        if remaining <= 0:
            self.check_limits()  # raises with the kill switch's own wording
        return max(remaining, 0.0)

    async def _bounded(self, make: Callable[[], Awaitable[Any]]) -> Any:
        """Await ``make()`` within the kill switch's max_seconds for the whole run.

        A factory, not an awaitable: nothing is started when the time is already up.
        """
        remaining = self._remaining()
        if remaining is None:
            return await make()
        try:
            async with asyncio.timeout(remaining):
                return await make()
        except TimeoutError:
            seconds = getattr(self.limits, "max_seconds", None) or 0.0
            raise AgentLimitReached(
                f"kill switch limit: max_seconds ({seconds:g} s) reached "
                "during a step; change ai.kill_switch.limits (None means no limit) to allow more"
            ) from None

    # -- the two things a run does ---------------------------------------------------------
    async def llm(
        self, messages: list[Message], *, tools: bool, kind: str, **step: Any
    ) -> Completion:
        """One model call through ``kite.agenerate`` (pipeline: kill switch, breaker, cost)."""
        self.check_limits(next_call=True)
        self.result.iterations += 1
        iteration = self.result.iterations
        self.emit("agent:step", iteration=iteration, kind=kind)
        specs = self.agent.guard.specs if tools else None
        try:
            completion: Completion = await self._bounded(
                lambda: self.kite.agenerate(
                    messages=list(messages), model=self.agent.model, tools=specs, cache=False
                )
            )
        except Exception as exc:  # the attempt is a step too: the log shows where it stopped
            self.step(kind, iteration=iteration, error=f"{type(exc).__name__}: {exc}", **step)
            raise
        self._account(completion)
        self.step(
            kind,
            iteration=iteration,
            text=completion.text,
            tool_calls=[{"name": c.name, "arguments": c.arguments} for c in completion.tool_calls],
            prompt_tokens=completion.usage.prompt_tokens,
            completion_tokens=completion.usage.completion_tokens,
            cost_usd=completion.cost_usd,
            latency_s=completion.latency_s,
            finish_reason=completion.finish_reason,
            **step,
        )
        if self.agent.verbose and completion.tool_calls:
            names = ", ".join(
                f"{c.name}({describe_arguments(c.arguments)})" for c in completion.tool_calls
            )
            self.agent._say(f"step {iteration} ({kind}): calls {names}")
        elif self.agent.verbose:
            self.agent._say(f"step {iteration} ({kind}): {self.preview(completion.text, 80)}")
        return completion

    async def run_tools(self, calls: list[ToolCall]) -> list[GuardOutcome]:
        """Run one turn's tool calls concurrently through the guard, within every limit."""
        if self.switch is not None:
            await self.switch.acheck()  # an active kill switch stops before any tool runs
        self.check_limits()
        for call in calls:  # the same call again and again, in a row, is a loop going nowhere
            key = f"{call.name}:{call.raw_arguments or canonical_json(call.arguments)}"
            self._streak = self._streak + 1 if key == self._last_action else 1
            self._last_action = key
            try:
                self.check_limits(same_action=self._streak)
            except AgentLimitReached as exc:
                action = f"{call.name}({describe_arguments(call.arguments)})"
                raise AgentLimitReached(f"{exc} [action: {action}]") from None
        for call in calls:
            self.emit("tool:call", tool=call.name, call_id=call.id, arguments=call.arguments)
        guard = self.agent.guard

        def batch() -> Awaitable[list[GuardOutcome]]:
            if len(calls) == 1:  # no task for a lone call: on a busy loop each hop costs a cycle
                return _one(guard.execute(calls[0], self.secret_values))
            return asyncio.gather(*(guard.execute(call, self.secret_values) for call in calls))

        outcomes: list[GuardOutcome] = await self._bounded(batch)
        for outcome in outcomes:
            record = outcome.record
            self.result.tool_calls.append(record)
            self.emit(
                "tool:result",
                tool=record.name,
                call_id=outcome.call.id,
                ok=record.ok,
                outcome=outcome.kind,
                result=record.result if record.ok else None,
                error=record.error,
                latency_s=record.latency_s,
            )
            if self.agent.verbose:
                shown = (
                    self.preview(outcome.content, 80)
                    if record.ok
                    else f"{outcome.kind}: {record.error}"
                )
                self.agent._say(f"  {record.name} -> {shown}")
        if self.result.steps:
            self.result.steps[-1]["tool_results"] = [
                {"name": o.record.name, "ok": o.record.ok, "outcome": o.kind} for o in outcomes
            ]
        return outcomes

    def _account(self, completion: Completion) -> None:
        result = self.result
        result.prompt_tokens += completion.usage.prompt_tokens
        result.completion_tokens += completion.usage.completion_tokens
        if completion.cost_usd is None:
            self._cost_known = False  # an unpriced model: the total is unknown, never a guess
        else:
            self._cost += completion.cost_usd
        result.cost_usd = self._cost if self._cost_known else None

    # -- failure ---------------------------------------------------------------------
    def fail(self, exc: BaseException) -> None:
        if not isinstance(exc, KiteError):  # a bug or an unexpected library error
            log.error("agent %r run %s failed", self.agent.name, self.run_id, exc_info=exc)
        self.fail_with(type(exc).__name__, str(exc), retry_after=retry_after_of(exc))

    def fail_with(
        self,
        kind: str,
        message: str,
        *,
        error_type: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Mark the run failed: ``error`` is "kind: message" (secrets scrubbed);
        ``error_type`` is the error class name (``kind`` unless given)."""
        self.result.success = False
        self.result.error = f"{kind}: {redact(message, self.secret_values())}"
        self.result.error_type = error_type or kind
        self.result.retry_after = retry_after


async def _one(outcome: Awaitable[GuardOutcome]) -> list[GuardOutcome]:
    return [await outcome]


def retry_after_of(exc: BaseException) -> float | None:
    """The provider's ``retry_after`` from a RateLimitError in ``exc``'s chain, if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, RateLimitError) and current.retry_after is not None:
            return float(current.retry_after)
        current = current.__cause__ or current.__context__
    return None
