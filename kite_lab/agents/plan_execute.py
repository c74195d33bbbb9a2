"""Plan and execute: plan the task as steps, run each step with tools, re-plan on failure.

Why re-planning is a real model call: a failed step (the model says ``STEP FAILED``, or
the step runs out of its own call budget) usually means the plan was wrong, not that the
task is impossible. The planner is asked again with what was done, what failed and why,
and the remaining work is replaced by the new plan. Re-plans are bounded
(``max_replans``), and every model call counts against ``max_iterations``, which is why
the deployment guide says to lower it for planning agents: it bounds their cost.

Plans are JSON (``{"steps": [...]}``); a numbered list is accepted too. An unparseable
plan gets one repair request; if that fails too, the whole task becomes a single step.
"""

from __future__ import annotations

import json
import re
from typing import Any

from kite_lab.core.errors import AgentError, InvalidInput
from kite_lab.core.types import Message

from .base import Agent
from .run_state import RunState

__all__ = ["PlanExecuteAgent", "parse_plan"]

PLAN_INSTRUCTIONS = """\
You are planning, not answering. Break the user's task into at most {max_steps} short, \
concrete steps; each step is done separately, with the tools listed below or by reasoning.
Available tools: {tools}
Reply with JSON only, no prose: {{"steps": ["first step", "second step"]}}"""

EXECUTE_INSTRUCTIONS = """\
You are executing one step of a plan for this task: {task}
Plan:
{plan}
Results of the steps done so far:
{results}
Do only the current step, using tools when needed, then reply with the step's result.
If the step cannot be done, reply with "STEP FAILED:" followed by the reason."""

SYNTHESIZE_INSTRUCTIONS = """\
The steps of a plan for the user's task have been carried out. Their results:
{results}
Using these results, write the final answer to the task."""

REPAIR_PROMPT = (
    "That was not a valid plan. Reply with JSON only, exactly of the form "
    '{"steps": ["first step", "second step"]}.'
)

_FAILED = re.compile(r"^\W*STEP FAILED\W*", re.I)
_LIST_ITEM = re.compile(r"^\s*(?:\d+[.):]|[-*\u2022]|Step\s+\d+\s*[:.)-])\s+(.+)$", re.I)
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S | re.I)


class PlanExecuteAgent(Agent):
    agent_type = "plan_execute"

    def __init__(
        self,
        *args: Any,
        max_replans: int = 2,
        max_plan_steps: int = 6,
        max_step_iterations: int = 5,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        for name, value, low in (
            ("max_replans", max_replans, 0),
            ("max_plan_steps", max_plan_steps, 1),
            ("max_step_iterations", max_step_iterations, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InvalidInput(f"{name} must be an int >= {low}, got {value!r}")
        self.max_replans = max_replans
        self.max_plan_steps = max_plan_steps
        self.max_step_iterations = max_step_iterations

    async def _execute(self, state: RunState, messages: list[Message]) -> str:
        prefix, task = messages[:-1], messages[-1].content
        plan = await self._plan(state, prefix, task) or [task]
        done: list[tuple[str, str]] = []
        replans = 0
        while plan:
            step = plan.pop(0)
            ok, outcome = await self._run_step(state, prefix, task, done, [step, *plan])
            if ok:
                done.append((step, outcome))
                continue
            if replans >= self.max_replans:
                raise AgentError(
                    f"step {step!r} failed after {replans} re-plan(s): {outcome}; "
                    "raise max_replans or give the agent the tools the task needs"
                )
            replans += 1
            progress = (
                f"Task: {task}\n\nSteps completed:\n{_results(done)}\n\n"
                f"This step failed: {step}\nWhy: {outcome}\n\n"
                "Make a new plan for the remaining work only (an empty list if nothing is left)."
            )
            plan = await self._plan(state, prefix, progress, replan=replans)
        return await self._synthesize(state, prefix, task, done)

    # -- planning ---------------------------------------------------------------------
    async def _plan(
        self, state: RunState, prefix: list[Message], request: str, replan: int = 0
    ) -> list[str]:
        tools = (
            "; ".join(f"{t.name}: {t.description or 'no description'}" for t in self.tools)
            or "none"
        )
        system = PLAN_INSTRUCTIONS.format(max_steps=self.max_plan_steps, tools=tools)
        messages = [*prefix, Message("system", system), Message("user", request)]
        kind = "replan" if replan else "plan"
        completion = await state.llm(messages, tools=False, kind=kind)
        steps = parse_plan(completion.text)
        if steps is None:  # one bounded repair attempt
            messages += [Message("assistant", completion.text), Message("user", REPAIR_PROMPT)]
            completion = await state.llm(messages, tools=False, kind=f"{kind}_repair")
            steps = parse_plan(completion.text)
        if steps is None:
            if replan:
                raise AgentError(
                    f"the model did not produce a usable re-plan: {completion.text[:200]!r}"
                )
            steps = []  # the caller falls back to doing the task as one step
        steps = steps[: self.max_plan_steps]
        state.result.steps[-1]["plan"] = list(steps)  # a copy: the caller pops its own list
        state.emit("agent:plan", steps=list(steps), replan=replan)
        if self.verbose:
            self._say(f"{kind}: " + " | ".join(steps))
        return steps

    # -- execution --------------------------------------------------------------------
    async def _run_step(
        self,
        state: RunState,
        prefix: list[Message],
        task: str,
        done: list[tuple[str, str]],
        remaining: list[str],
    ) -> tuple[bool, str]:
        """``(True, result)`` or ``(False, why it failed)`` for ``remaining[0]``."""
        number = len(done) + 1
        plan = [f"{i}. {s} (done)" for i, (s, _) in enumerate(done, 1)]
        plan += [f"{i}. {s}" for i, s in enumerate(remaining, number)]
        system = EXECUTE_INSTRUCTIONS.format(
            task=task, plan="\n".join(plan), results=_results(done) or "(none yet)"
        )
        head = [m for m in prefix[:1] if m.role == "system"]  # the agent's own system prompt
        messages = [
            *head,
            Message("system", system),
            Message("user", f"Step {number}: {remaining[0]}"),
        ]
        for _ in range(self.max_step_iterations):
            completion = await state.llm(
                messages, tools=True, kind="execute", plan_step=remaining[0]
            )
            if not completion.tool_calls:
                text = completion.text.strip()
                if _FAILED.match(text):
                    reason = _FAILED.sub("", text).strip() or "no reason given"
                    state.result.steps[-1]["step_failed"] = reason
                    return False, reason
                return True, text
            await self._act(state, messages, completion)
        return False, f"the step did not finish within {self.max_step_iterations} model calls"

    async def _synthesize(
        self, state: RunState, prefix: list[Message], task: str, done: list[tuple[str, str]]
    ) -> str:
        system = SYNTHESIZE_INSTRUCTIONS.format(results=_results(done) or "(no steps were needed)")
        messages = [*prefix, Message("system", system), Message("user", task)]
        completion = await state.llm(messages, tools=False, kind="synthesize")
        return completion.text


def _results(done: list[tuple[str, str]]) -> str:
    return "\n".join(f"{i}. {step} -> {result}" for i, (step, result) in enumerate(done, 1))


def parse_plan(text: str) -> list[str] | None:
    """The steps of a plan written as JSON (or as a numbered list); None if there are none.

    An explicit empty JSON list means "nothing left to do" and returns ``[]``.
    """
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    for candidate in candidates:
        value = _first_json(candidate)
        if value is _MISSING:
            continue
        if isinstance(value, dict):
            value = next(
                (value[k] for k in ("steps", "plan", "tasks") if isinstance(value.get(k), list)),
                None,
            )
        if isinstance(value, list):
            steps = [_step_text(item) for item in value]
            if all(s is not None for s in steps):
                return [s for s in steps if s]
    items = [m.group(1).strip() for m in map(_LIST_ITEM.match, text.splitlines()) if m]
    return items or None


_MISSING = object()


def _first_json(text: str) -> Any:
    text = text.strip()
    try:
        return json.loads(text)
    except ValueError:
        pass
    decoder = json.JSONDecoder()
    for i, char in enumerate(text):
        if char in "[{":
            try:
                return decoder.raw_decode(text, i)[0]
            except ValueError:
                continue
    return _MISSING


def _step_text(item: Any) -> str | None:
    if isinstance(item, str):
        return item.strip()
    if isinstance(item, dict):
        for key in ("step", "description", "task", "action", "name"):
            value = item.get(key)
            if isinstance(value, str):
                return value.strip()
    return None
