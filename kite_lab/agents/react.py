"""ReAct: reason, act, observe -- with the provider's native tool calls as the "act".

Why not the classic text protocol (``Action: ... Action Input: ...``): native tool calls
are parsed by the provider, validated by the guard and cannot be confused with prose.
What ReAct adds on top of the base loop is the *reasoning*: the model is asked to write
a short ``Thought:`` before each action, and each step of the result records the
thought, the actions and their observations, so a run can be read afterwards.
"""

from __future__ import annotations

import re

from kite_lab.core.types import Message

from .base import Agent
from .run_state import RunState

__all__ = ["ReActAgent"]

REACT_INSTRUCTIONS = """\
Work in a loop of Thought, Action and Observation:
- Thought: before each action, write one or two sentences starting with "Thought:" about \
what you know and what you need next.
- Action: call one of your tools (several at once if they are independent).
- Observation: read the tool results that come back, then think again.
When you know the answer, reply with "Final Answer:" followed by the answer, and call no tool."""

_FINAL = re.compile(r"Final Answer:\s*", re.I)
_THOUGHT = re.compile(r"^\s*Thought:\s*", re.I)


class ReActAgent(Agent):
    agent_type = "react"

    def _instructions(self) -> str:
        if not self.guard.tools:
            return REACT_INSTRUCTIONS.replace("call one of your tools", "reason step by step")
        return REACT_INSTRUCTIONS

    async def _execute(self, state: RunState, messages: list[Message]) -> str:
        while True:
            completion = await state.llm(messages, tools=True, kind="reason")
            thought = _THOUGHT.sub("", completion.text).strip()
            step = state.result.steps[-1]
            step["thought"] = thought
            if not completion.tool_calls:
                return final_answer(completion.text)
            step["kind"] = "act"
            outcomes = await self._act(state, messages, completion)
            step["observations"] = [o.content for o in outcomes]


def final_answer(text: str) -> str:
    """The text after ``Final Answer:`` (the whole text when the marker is missing)."""
    marker = _FINAL.search(text)
    return text[marker.end() :].strip() if marker else text.strip()
