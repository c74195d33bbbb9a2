"""The agent: a tool-calling loop with limits, accounting, events and a result that says
what happened.

The run's bookkeeping (limits, accounting, events, the step log) lives in ``RunState``
(``agents.run_state``), shared by every agent type; agent types only decide *what* to ask
the model. An agent runs on an ``AgentHost`` (a ``Kite`` is one), never on ``Kite``
itself, so the facade can build agents without the two importing each other.

``Agent.run`` never raises for anything that happens during a run (an open breaker, the
kill switch, a provider error, a limit): it returns a ``RunResult`` with ``success=False``
and ``error`` / ``error_type`` set, so one failed run cannot take down ``asyncio.gather``
over hundreds. Only bad arguments to ``run`` itself (not a str, empty) raise, before
anything starts.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import Container, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from kite_lab.core.errors import InvalidInput
from kite_lab.core.events import event_context
from kite_lab.core.runner import run_sync
from kite_lab.core.types import Completion, Message, RunResult, ToolCall
from kite_lab.core.validate import check_int

from .guard import GuardOutcome, ToolGuard
from .run_state import RunState
from .tools import Tool

if TYPE_CHECKING:
    from .host import AgentHost

__all__ = ["Agent"]


class Agent:
    """An LLM with a system prompt, a whitelist of tools and limits.

    >>> agent = ai.create_agent("helper", "You are concise.", tools=["calculator"])
    >>> result = await agent.run("What is 17 * 23?")
    >>> result.response, result.tool_calls, result.cost_usd
    """

    agent_type: ClassVar[str] = "base"

    def __init__(
        self,
        kite: AgentHost,
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
        check_int(top_k, "top_k")
        check_int(history_messages, "history_messages", minimum=0)
        if session_id is not None and (not isinstance(session_id, str) or not session_id.strip()):
            raise InvalidInput("session_id must be a non-empty str (or None for no session)")
        #: the host this agent runs on (a Kite, or any AgentHost)
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
            state.fail_with("cancelled", "the run was cancelled", error_type="CancelledError")
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


def _with_id(call: ToolCall) -> ToolCall:
    if call.id:
        return call
    return ToolCall(f"call_{uuid.uuid4().hex[:24]}", call.name, call.arguments, call.raw_arguments)


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
