"""The helpers a ``%%kite`` cell runs through, public so exported scripts call them too.

Why one module: a notebook cell and the script ``kite-lab export`` makes of it must compute
the same thing. The cell runner (``kite_lab.notebook.cell``) executes a cell's plan with
these functions, and the exporter writes calls to the same functions into the script, so
there is one implementation of what ``-o VAR`` stores, of a ``--session`` conversation, of
how ``--tools`` names become tools (by the rules of ``kite_lab.agents.lookup``, as
everywhere else). Plain Python: importing it
never imports IPython, ipywidgets or the magics, so exported scripts run with ``python``.

What ``kite-lab export`` writes for a few cells::

    # %%kite -o answer --temperature 0
    answer = answer_text(ai.generate(prompt, temperature=0.0))
    answer.text, answer.usage.total_tokens, answer.cost_usd   # as on the Completion

    # %%kite --session s1 -o reply
    completion = ai.generate(messages=session_messages(ai, "s1", prompt, 20))
    reply = answer_text(completion)
    remember_turn(ai, "s1", prompt, completion.text)

    # %%kite --tools add,calculator -o run
    cell_agent = tools_agent(ai, [resolve_tool(ai, "add", add), resolve_tool(ai, "calculator")])
    run = cell_agent.run_sync(prompt)
    check_run(run)                      # a failed run raises AgentError, as the cell does

The same helpers work in a script written by hand. Sync helpers are thin wrappers over
their async twins (``asession_messages``, ``aremember_turn``), for code already on an
event loop.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kite_lab.core.errors import AgentError
from kite_lab.core.runner import run_sync
from kite_lab.core.types import Completion, Message, RunResult
from kite_lab.render import KiteText, extract_code, parse_json, to_dataframe

if TYPE_CHECKING:
    from kite_lab.agents.base import Agent
    from kite_lab.agents.tools import Tool
    from kite_lab.kite import Kite

__all__ = [
    "CHECK_FILE_ENV",
    "agents_app",
    "answer_code",
    "answer_text",
    "answer_value",
    "aremember_turn",
    "asession_messages",
    "check_run",
    "evaluate_cell",
    "plain_text",
    "record_answer",
    "remember_turn",
    "resolve_tool",
    "session_messages",
    "show",
    "tools_agent",
]

#: ``kite-lab export --check`` sets this to a file; ``record_answer`` appends to it
CHECK_FILE_ENV = "KITE_EXPORT_CHECK_FILE"
#: the session metadata a ``%%kite`` turn is stored with
_TURN_METADATA = {"source": "%%kite"}


# -- what -o VAR stores ------------------------------------------------------------------


def answer_text(completion: Completion) -> KiteText:
    """What ``%%kite -o VAR`` stores for -f markdown|text|html: the text with its Completion."""
    return KiteText.from_completion(completion)


def answer_code(answer: Completion | str) -> KiteText:
    """What ``-f code`` stores: the first fenced block (or the whole text) of the answer."""
    if isinstance(answer, Completion):
        return KiteText.from_completion(answer, extract_code(answer.text)[0])
    return KiteText(extract_code(answer)[0], None)


def answer_value(fmt: str, answer: Completion | str) -> Any:
    """What ``-o VAR`` stores for an answer shown as ``fmt`` (``OutputParseError`` if it
    is not the JSON that -f json|df asks for). An agent's answer is its ``response`` text."""
    text = answer.text if isinstance(answer, Completion) else answer
    if fmt == "json":
        return parse_json(text)
    if fmt == "df":
        return to_dataframe(parse_json(text))
    if fmt == "code":
        return answer_code(answer)
    if isinstance(answer, Completion):
        return answer_text(answer)
    return KiteText(answer, None)


# -- --session ID ------------------------------------------------------------------------


async def asession_messages(ai: Kite, session_id: str, prompt: str, max_history: int
                            ) -> list[Message]:
    """``--session ID``: the session's last ``max_history`` user/assistant turns + ``prompt``."""
    history: list[Message] = []
    if max_history > 0:
        window = await ai.session_memory.awindow(session_id, max_messages=max_history)
        history = [m for m in map(Message.from_any, window) if m.role in ("user", "assistant")]
    return [*history, Message("user", prompt)]


def session_messages(ai: Kite, session_id: str, prompt: str, max_history: int
                     ) -> list[Message]:
    """Sync ``asession_messages``."""
    return run_sync(asession_messages(ai, session_id, prompt, max_history))


async def aremember_turn(ai: Kite, session_id: str, prompt: str, answer: str,
                         images: Sequence[Any] = ()) -> None:
    """Store one ``--session`` turn (the prompt and the answer), as the cell does; the
    prompt's ``images`` are stored as references (source, type, sha256), never the bytes."""
    store = ai.session_memory
    metadata: dict[str, Any] = dict(_TURN_METADATA)
    if images:
        from kite_lab.structured.images import load_image

        metadata["images"] = [load_image(image).to_dict() for image in images]
    await store.aadd_message(session_id, "user", prompt, metadata=metadata)
    await store.aadd_message(session_id, "assistant", answer, metadata=dict(_TURN_METADATA))


def remember_turn(ai: Kite, session_id: str, prompt: str, answer: str,
                  images: Sequence[Any] = ()) -> None:
    """Sync ``aremember_turn``."""
    run_sync(aremember_turn(ai, session_id, prompt, answer, images))


# -- agents and tools --------------------------------------------------------------------


def resolve_tool(ai: Kite, name: str, value: Any = None) -> Tool:
    """A ``--tools`` name: one of ``ai.tools``, a built-in, else ``value`` (the notebook's
    variable ``name``) if it is a Tool or a function. The rule is ``agents.resolve_tool``."""
    from kite_lab.agents.lookup import resolve_tool as lookup

    return lookup(ai, name, {name: value})


def tools_agent(ai: Kite, tools: Sequence[Tool], *, history_messages: int,
                system: str | None = None, model: str | None = None) -> Agent:
    """The agent a ``--tools`` cell runs: ``tools`` only, the cell's system prompt and model."""
    from kite_lab.agents.base import Agent

    return Agent(ai, "kite-cell", system or "", tools=list(tools), model=model,
                 history_messages=history_messages)


def check_run(result: RunResult) -> RunResult:
    """Raise ``AgentError`` for a failed agent run, as the ``%%kite agent:NAME`` cell does."""
    if not result.success:
        raise AgentError(f"agent {result.agent!r} failed: {result.error}")
    return result


# -- evals -------------------------------------------------------------------------------


def evaluate_cell(ai: Kite, dataset: Any, template: str, targets: Sequence[str],
                  scorers: Sequence[str], namespace: Any = None, **options: Any) -> Any:
    """A ``%%kite eval DATASET --targets ... --scorers ...`` cell: ``ai.evaluate`` with the
    body as the template of the model-id targets; ``agent:NAME`` targets are agents (from
    ``namespace``, else ``ai.agents``). Returns the ``EvalResult``."""
    from kite_lab.agents.lookup import resolve_agent

    resolved: list[Any] = [
        resolve_agent(ai, t.removeprefix("agent:"), namespace) if t.startswith("agent:") else t
        for t in targets
    ]
    return ai.evaluate(dataset, resolved, list(scorers), prompt=template, **options)


# -- what a script shows ------------------------------------------------------------------


def show(value: Any) -> None:
    """A script's stand-in for a cell's displayed value: text on stdout, never a widget.

    None shows nothing (as in a notebook); widgets print their text summary; plotly
    figures print one line (save them with ``fig.write_html(path)``).
    """
    if value is None:
        return
    print(_text_of(value))


def _text_of(value: Any) -> str:
    to_markdown = getattr(value, "to_markdown", None)
    module = type(value).__module__
    if module.startswith("kite_lab.notebook.widgets") and callable(to_markdown):
        return str(to_markdown())
    if module.startswith("plotly."):
        layout = getattr(value, "layout", None)
        title = getattr(getattr(layout, "title", None), "text", None) or "untitled"
        traces = len(getattr(value, "data", ()) or ())
        return f"[plotly figure {title!r}: {traces} trace(s); save it with fig.write_html(path)]"
    if module.startswith("ipywidgets."):
        return f"[{type(value).__name__} widget: widgets need a notebook frontend]"
    return str(value)


def plain_text(fmt: str, value: Any) -> str:
    """The text/plain a ``%%kite`` cell shows for ``value`` (without the footer)."""
    from kite_lab.render import CellOutput

    text = value.response if isinstance(value, RunResult) else value
    text = text if isinstance(text, str) else ""
    bundle, _ = CellOutput(text, fmt, value)._repr_mimebundle_()
    return str(bundle["text/plain"])


def record_answer(cell: int, fmt: str, value: Any) -> Any:
    """``--check`` runs only: note what cell ``cell`` produced, for the comparison."""
    path = os.environ.get(CHECK_FILE_ENV)
    if path:
        line = json.dumps({"cell": cell, "format": fmt, "text": plain_text(fmt, value)})
        with open(path, "a", encoding="utf-8") as stream:
            stream.write(line + "\n")
    return value


def agents_app(ai: Kite, module_name: str) -> Any:
    """``--service``: the FastAPI app serving ``ai`` and the agents of module ``module_name``."""
    import sys

    from kite_lab.service.app import create_app

    return create_app(kite=ai, agents_module=sys.modules[module_name])
