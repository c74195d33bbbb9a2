"""The few helpers a script exported from a notebook imports (``kite-lab export``).

Why a module of its own: an exported ``%%kite`` cell must compute exactly what the magic
stored, so the script calls the same functions the magic does (``render.parse_json``,
``render.to_dataframe``, ``render.KiteText``) plus the small glue below, which the magic
does inline on objects only a kernel has. Everything here is plain Python: importing it
never imports IPython, ipywidgets or the magics, so exported scripts run with ``python``.

    answer = answer_text(ai.generate(prompt, temperature=0.0))   # %%kite -o answer
    run = agent.run_sync(prompt); check_run(run)                  # %%kite agent:NAME
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from kite_lab.core.errors import AgentError, ToolError
from kite_lab.core.types import Completion, Message, RunResult
from kite_lab.notebook.render import KiteText, extract_code

if TYPE_CHECKING:
    from kite_lab.kite import Kite

__all__ = [
    "CHECK_FILE_ENV",
    "agents_app",
    "answer_code",
    "answer_text",
    "check_run",
    "plain_text",
    "record_answer",
    "remember_turn",
    "resolve_tool",
    "session_messages",
    "show",
]

#: ``kite-lab export --check`` sets this to a file; ``record_answer`` appends to it
CHECK_FILE_ENV = "KITE_EXPORT_CHECK_FILE"

_MISSING: Any = object()


def answer_text(completion: Completion) -> KiteText:
    """What ``%%kite -o VAR`` stores for -f markdown|text|html: the text with its Completion."""
    return KiteText(completion.text, completion)


def answer_code(answer: Completion | str) -> KiteText:
    """What ``-f code`` stores: the first fenced block (or the whole text) of the answer."""
    if isinstance(answer, Completion):
        return KiteText(extract_code(answer.text)[0], answer)
    return KiteText(extract_code(answer)[0], None)


def session_messages(ai: Kite, session_id: str, prompt: str, max_history: int = 20
                     ) -> list[Message]:
    """``--session ID``: the session's last ``max_history`` user/assistant turns + ``prompt``."""
    history: list[Message] = []
    if max_history > 0:
        window = ai.session_memory.window(session_id, max_messages=max_history)
        history = [m for m in map(Message.from_any, window) if m.role in ("user", "assistant")]
    return [*history, Message("user", prompt)]


def remember_turn(ai: Kite, session_id: str, prompt: str, answer: str) -> None:
    """Store one ``--session`` turn (the prompt and the answer), as the magic does."""
    store = ai.session_memory
    meta = {"source": "%%kite"}
    store.add_message(session_id, "user", prompt, metadata=meta)
    store.add_message(session_id, "assistant", answer, metadata=meta)


def check_run(result: RunResult) -> RunResult:
    """Raise ``AgentError`` for a failed agent run, as the ``%%kite agent:NAME`` cell does."""
    if not result.success:
        raise AgentError(f"agent {result.agent!r} failed: {result.error}")
    return result


def resolve_tool(ai: Kite, name: str, value: Any = _MISSING) -> Any:
    """A ``--tools`` name: one of ``ai.tools``, a built-in, a Tool, or a function ``value``."""
    from kite_lab.agents.builtin_tools import BUILTIN_TOOLS, builtin_tool
    from kite_lab.agents.tools import Tool, build_tool

    if name in ai.tools:
        return ai.tools[name]
    if name in BUILTIN_TOOLS:
        return builtin_tool(ai, name)
    if isinstance(value, Tool):
        return value
    if value is not _MISSING and callable(value):
        return build_tool(name, value)
    raise ToolError(f"no tool or function named {name!r} (ai tools: {', '.join(ai.tools) or 'none'}"
                    f"; built-in: {', '.join(BUILTIN_TOOLS)})")


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
    from kite_lab.notebook.render import CellOutput

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

