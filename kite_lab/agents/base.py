"""The agent: a tool-calling loop with limits, accounting, events and a result that says
what happened.

Why one ``RunState`` shared by every agent type: limits (max_iterations, the kill switch's
cost / time / same-action limits), token and cost totals, events and the step log must
behave identically in the base loop, ReAct and plan-and-execute. Agent types only decide
*what* to ask the model; every model call goes through ``RunState.llm`` and every tool
call through ``RunState.run_tools``, so no loop can forget a limit.

``Agent.run`` never raises for anything that happens during a run (an open breaker, the
kill switch, a provider error, a limit): it returns a ``RunResult`` with ``success=False``
and ``error`` set, so one failed run cannot take down ``asyncio.gather`` over hundreds.
Only bad arguments to ``run`` itself (not a str, empty) raise, before anything starts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Container, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from kite_lab.core.errors import AgentLimitReached, InvalidInput, KiteError, redact
from kite_lab.core.events import event_context
from kite_lab.core.runner import run_sync
from kite_lab.core.types import Completion, Message, RunResult, ToolCall, canonical_json

from .guard import GuardOutcome, ToolGuard, describe_arguments
from .tools import Tool

if TYPE_CHECKING:
    from kite_lab.kite import Kite

__all__ = ["Agent", "RunState"]

log = logging.getLogger("kite_lab.agents")

#: characters of input / response kept in events unless KITE_LOG_PROMPTS=true
PREVIEW_CHARS = 200


class Agent:
    """An LLM with a system prompt, a whitelist of tools and limits.

    >>> agent = ai.create_agent("helper", "You are concise.", tools=["calculator"])
    >>> result = await agent.run("What is 17 * 23?")
    >>> result.response, result.tool_calls, result.cost_usd
    """

    agent_type: ClassVar[str] = "base"

    def __init__(
        self,
        kite: Kite,
        name: str,
        system_prompt: str = "",
        *,
        tools: Sequence[Tool] = (),
        model: str | None = None,
        max_iterations: int = 10,
        session_id: str | None = None,
        knowledge: Any = None,
        verbose: bool = False,
        top_k: int = 3,
        history_messages: int = 20,
        known_tools: Container[str] = (),
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise InvalidInput("an agent needs a non-empty name")
        if not isinstance(system_prompt, str):
            raise TypeError(f"system_prompt must be str, not {type(system_prompt).__name__}")
        if isinstance(max_iterations, bool) or not isinstance(max_iterations, int):
            raise TypeError(f"max_iterations must be an int, not {type(max_iterations).__name__}")
        if max_iterations < 1:
            raise InvalidInput(f"max_iterations must be >= 1, got {max_iterations}")
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise InvalidInput(f"top_k must be an int >= 1, got {top_k!r}")
        if (
            isinstance(history_messages, bool)
            or not isinstance(history_messages, int)
            or history_messages < 0
        ):
            raise InvalidInput(f"history_messages must be an int >= 0, got {history_messages!r}")
        if session_id is not None and (not isinstance(session_id, str) or not session_id.strip()):
            raise InvalidInput("session_id must be a non-empty str (or None for no session)")
        self.kite = kite
        self.name = name
        self.system_prompt = system_prompt
        self.model = model
        self.max_iterations = max_iterations
        self.session_id = session_id
        self.knowledge = knowledge
        self.verbose = bool(verbose)
        self.top_k = top_k
        self.history_messages = history_messages
        self.guard = ToolGuard({t.name: t for t in tools}, known_elsewhere=known_tools)
        # counters (guide: agent.success_count / agent.call_count)
        self.call_count = 0
        self.success_count = 0
        self.failure_count = 0
        self._totals: Counter[str] = Counter()
        self._cost_usd = 0.0
        self._last_error: str | None = None

    # -- public API --------------------------------------------------------------------
    @property
    def tools(self) -> list[Tool]:
        return list(self.guard.tools.values())

    async def run(
        self,
        user_input: str,
        context: str | Mapping[str, Any] | None = None,
        *,
        session_id: str | None = None,
    ) -> RunResult:
        """Answer ``user_input``; ``context`` (text or a dict) is added to the system prompt."""
        if not isinstance(user_input, str):
            raise TypeError(f"user_input must be str, not {type(user_input).__name__}")
        if not user_input.strip():
            raise InvalidInput("user_input is empty; pass the task or question for the agent")
        session = session_id if session_id is not None else self.session_id
        state = RunState(self)
        self.call_count += 1
        state.emit(
            "agent:start",
            agent_type=self.agent_type,
            model=self.model,
            session_id=session,
            input=state.preview(user_input),
        )
        if self.verbose:
            self._say(f"start: {state.preview(user_input, 80)}")
        try:
            # llm:* events from the pipeline carry this run's id and agent name
            with event_context(agent=self.name, run_id=state.run_id):
                state.switch = self.kite.kill_switch
                messages = await self._prepare(state, user_input, context, session)
                state.result.response = await self._execute(state, messages)
                state.result.success = True
                if session:
                    await self._remember(session, user_input, state.result.response, state)
        except asyncio.CancelledError:
            state.fail_with("cancelled", "the run was cancelled")
            self._finish(state)
            raise
        except Exception as exc:
            state.fail(exc)
        self._finish(state)
        return state.result

    def run_sync(
        self,
        user_input: str,
        context: str | Mapping[str, Any] | None = None,
        *,
        session_id: str | None = None,
    ) -> RunResult:
        """``run`` from sync code (works inside Jupyter's running loop too)."""
        return run_sync(self.run(user_input, context, session_id=session_id))

    def get_metrics(self) -> dict[str, Any]:
        """Counters over every run of this agent (since it was created)."""
        calls = self.call_count
        return {
            "agent": self.name,
            "agent_type": self.agent_type,
            "call_count": calls,
            "success_count": self.success_count,
            "failure_count": self.failure_count,
            "success_rate": self.success_count / calls if calls else 0.0,
            "iterations": self._totals["iterations"],
            "prompt_tokens": self._totals["prompt_tokens"],
            "completion_tokens": self._totals["completion_tokens"],
            "total_tokens": self._totals["prompt_tokens"] + self._totals["completion_tokens"],
            "cost_usd": self._cost_usd,
            "avg_latency_s": self._totals["latency_us"] / 1e6 / calls if calls else 0.0,
            "tool_calls": sum(self.guard.counts.values()),
            "tool_outcomes": dict(self.guard.counts),
            "last_error": self._last_error,
        }

    def reset_metrics(self) -> None:
        self.call_count = self.success_count = self.failure_count = 0
        self._totals.clear()
        self.guard.counts.clear()
        self._cost_usd, self._last_error = 0.0, None

    def __repr__(self) -> str:
        tools = ", ".join(self.guard.tools) or "no tools"
        return (
            f"{type(self).__name__}({self.name!r}, {tools}, max_iterations={self.max_iterations})"
        )

    # -- what agent types override -------------------------------------------------------
    def _instructions(self) -> str:
        """Extra system-prompt text for this agent type."""
        return ""

    async def _execute(self, state: RunState, messages: list[Message]) -> str:
        """The base loop: call the model with tools until it answers without calling one."""
        while True:
            completion = await state.llm(messages, tools=True, kind="act")
            if not completion.tool_calls:
                return completion.text
            await self._act(state, messages, completion)

    async def _act(
        self, state: RunState, messages: list[Message], completion: Completion
    ) -> list[GuardOutcome]:
        """Append the assistant turn, run its tool calls, append their results."""
        calls = [_with_id(c) for c in completion.tool_calls]
        messages.append(Message("assistant", completion.text, tool_calls=calls))
        outcomes = await state.run_tools(calls)
        messages.extend(Message("tool", o.content, tool_call_id=o.call.id) for o in outcomes)
        return outcomes

    # -- context: system prompt, knowledge, session -----------------------------------
    async def _prepare(
        self,
        state: RunState,
        user_input: str,
        context: str | Mapping[str, Any] | None,
        session: str | None,
    ) -> list[Message]:
        parts = [p for p in (self.system_prompt.strip(), self._instructions()) if p]
        knowledge = await self._retrieve(state, user_input)
        if knowledge:
            parts.append(knowledge)
        if context is not None:
            parts.append("Context:\n" + _format_context(context))
        messages = [Message("system", "\n\n".join(parts))] if parts else []
        if session and self.history_messages:
            store = self.kite.session_memory
            history = await store.awindow(session, max_messages=self.history_messages)
            messages += _usable_history(history)
            state.step("history", session_id=session, messages=len(history))
        messages.append(Message("user", user_input))
        return messages

    async def _retrieve(self, state: RunState, query: str) -> str:
        if self.knowledge is None or self.knowledge is False:
            return ""
        memory, top_k = self.kite.vector_memory, self.top_k
        if isinstance(self.knowledge, int) and not isinstance(self.knowledge, bool):
            top_k = self.knowledge
        elif self.knowledge is not True:
            memory = self.knowledge
        hits = await memory.asearch(query, top_k=top_k)
        state.step(
            "retrieve",
            hits=[{"doc_id": h.doc_id, "chunk_id": h.chunk_id, "score": h.score} for h in hits],
        )
        if not hits:
            return ""
        lines = ["Relevant knowledge (retrieved from memory; cite it when you use it):"]
        for i, hit in enumerate(hits, 1):
            lines.append(f"[{i}] ({hit.doc_id}) {hit.text.strip()}")
        return "\n".join(lines)

    async def _remember(
        self, session: str, user_input: str, response: str, state: RunState
    ) -> None:
        if not response.strip():  # an empty answer would make the history invalid
            return
        store = self.kite.session_memory
        meta = {"agent": self.name, "run_id": state.run_id}
        await store.aadd_message(session, "user", user_input, metadata=meta)
        await store.aadd_message(session, "assistant", response, metadata=meta)

    # -- bookkeeping ------------------------------------------------------------------
    def _finish(self, state: RunState) -> None:
        result = state.result
        result.latency_s = time.perf_counter() - state.started
        if result.success:
            self.success_count += 1
        else:
            self.failure_count += 1
            self._last_error = result.error
        totals = self._totals
        totals["iterations"] += result.iterations
        totals["prompt_tokens"] += result.prompt_tokens
        totals["completion_tokens"] += result.completion_tokens
        totals["latency_us"] += int(result.latency_s * 1e6)
        self._cost_usd += result.cost_usd or 0.0
        state.emit(
            "agent:end",
            agent_type=self.agent_type,
            success=result.success,
            iterations=result.iterations,
            tool_calls=len(result.tool_calls),
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            cost_usd=result.cost_usd,
            latency_s=result.latency_s,
            error=result.error,
            response=state.preview(result.response),
        )
        if not self.verbose:
            return
        if result.success:
            self._say(
                f"done in {result.iterations} step(s), {result.latency_s:.2f} s: "
                f"{state.preview(result.response, 80)}"
            )
        else:
            self._say(f"failed after {result.iterations} step(s): {result.error}")

    def _say(self, text: str) -> None:
        if self.verbose:
            print(f"[{self.name}] {text}", flush=True)


class RunState:
    """One run in progress: its counters, limits and the RunResult being filled."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.kite = agent.kite
        self.run_id = uuid.uuid4().hex
        self.started = time.perf_counter()
        self.result = RunResult(agent=agent.name)
        self.switch: Any = None
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
    def limits(self) -> Any:
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
        max_seconds = getattr(self.limits, "max_seconds", None)
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
            raise AgentLimitReached(
                f"kill switch limit: max_seconds ({self.limits.max_seconds:g} s) reached "
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
        self.fail_with(type(exc).__name__, str(exc))

    def fail_with(self, kind: str, message: str) -> None:
        self.result.success = False
        self.result.error = f"{kind}: {redact(message, self.secret_values())}"


def _with_id(call: ToolCall) -> ToolCall:
    if call.id:
        return call
    return ToolCall(f"call_{uuid.uuid4().hex[:24]}", call.name, call.arguments, call.raw_arguments)


async def _one(outcome: Awaitable[GuardOutcome]) -> list[GuardOutcome]:
    return [await outcome]


def _usable_history(history: Sequence[Any]) -> list[Message]:
    """User and plain assistant turns, starting with a user turn (what every wire accepts)."""
    messages = [
        m
        for m in map(Message.from_any, history)
        if m.content.strip() and (m.role == "user" or (m.role == "assistant" and not m.tool_calls))
    ]
    while messages and messages[0].role != "user":
        messages.pop(0)
    return messages


def _format_context(context: str | Mapping[str, Any]) -> str:
    if isinstance(context, str):
        return context
    if isinstance(context, Mapping):
        return "\n".join(
            f"{key}: {value if isinstance(value, str) else json.dumps(value, default=str)}"
            for key, value in context.items()
        )
    return str(context)
