"""Run many agent tasks concurrently, at most ``concurrency`` at a time.

Why validation happens before the first run: a batch of a thousand tasks with a typo in
the 900th should fail at once with the task's index, not after 899 paid runs. Once
running, a failed run is a ``RunResult`` with ``success=False`` in its slot; results come
back in the order of ``tasks``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

from kite_lab.core.errors import InvalidInput
from kite_lab.core.runner import gather_bounded
from kite_lab.core.types import RunResult

from .base import Agent
from .lookup import AgentDirectory, resolve_agent

__all__ = ["process"]


async def process(
    kite: AgentDirectory, tasks: Iterable[Any], concurrency: int = 10
) -> list[RunResult]:
    """Run ``tasks`` -- ``(agent_or_name, input)`` pairs or ``{"agent", "input"}`` dicts
    (optionally with ``context`` and ``session_id``) -- and return their RunResults."""
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise InvalidInput(f"concurrency must be an int >= 1, got {concurrency!r}")
    jobs = [_job(kite, index, task) for index, task in enumerate(tasks)]
    outcomes = await gather_bounded([functools.partial(_run, job) for job in jobs], concurrency)
    results: list[RunResult] = []
    for (agent, *_), outcome in zip(jobs, outcomes, strict=True):
        if isinstance(outcome, BaseException):  # run() returns failures; this is a cancellation
            kind = type(outcome).__name__
            outcome = RunResult(agent=agent.name, error=f"{kind}: {outcome}", error_type=kind)
        results.append(outcome)
    return results


async def _run(job: tuple[Agent, str, Any, str | None]) -> RunResult:
    agent, user_input, context, session_id = job
    return await agent.run(user_input, context, session_id=session_id)


def _job(kite: AgentDirectory, index: int, task: Any) -> tuple[Agent, str, Any, str | None]:
    context = session_id = None
    if isinstance(task, Mapping):
        unknown = set(task) - {"agent", "input", "context", "session_id"}
        if unknown or "agent" not in task or "input" not in task:
            raise InvalidInput(
                f"task {index}: expected keys agent, input (and optionally context, session_id), "
                f"got {sorted(task)}"
            )
        target, user_input = task["agent"], task["input"]
        context, session_id = task.get("context"), task.get("session_id")
    elif isinstance(task, tuple | list) and len(task) in (2, 3):
        target, user_input = task[0], task[1]
        context = task[2] if len(task) == 3 else None
    else:
        raise InvalidInput(
            f"task {index}: expected (agent, input) or {{'agent': ..., 'input': ...}}, "
            f"got {type(task).__name__}"
        )
    try:
        agent = resolve_agent(kite, target)
    except InvalidInput as exc:
        raise InvalidInput(f"task {index}: {exc}") from None
    if not isinstance(user_input, str) or not user_input.strip():
        raise InvalidInput(f"task {index}: input must be a non-empty str")
    return agent, user_input, context, session_id
