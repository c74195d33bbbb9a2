"""How a ``%%kite`` answer looks in a cell, and how its text turns into a value.

Why one module: the cell output (mime bundle + footer + provenance metadata) and the value
stored by ``-o VAR`` come from the same parsing functions, and the exporter emits calls to
those functions (``parse_json``, ``to_dataframe``, ``extract_code``) so an exported script
computes exactly what the notebook cell stored. Why top-level, not in ``notebook/``: it is
plain Python (no IPython), and ``kite_lab.script`` -- what exported scripts and the cell
runner call -- builds its values (``KiteText``) and outputs (``CellOutput``) from it.

Every output carries ``metadata["kite_lab"]``: target, provider, model, parameters, a
sha256 of the prompt, the kite_lab version; never a key (parameters are model options).
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kite_lab.core.errors import OutputParseError
from kite_lab.core.types import Completion, RunResult, ToolCall, Usage

__all__ = [
    "CellOutput",
    "KiteText",
    "StreamView",
    "escape_dollars",
    "extract_code",
    "footer_text",
    "parse_json",
    "parse_output",
    "provenance",
    "to_dataframe",
]

_FENCE = re.compile(r"```[ \t]*(?P<lang>[\w+.#-]*)[^\n]*\n(?P<body>.*?)(?:\n```|\Z)", re.S)


class KiteText(str):
    """What ``%%kite -o VAR`` stores: the answer as a ``str`` that also reads like its
    ``Completion``.

    ``answer.upper()``, ``answer + "!"`` and ``json.loads(answer)`` treat it as text (and
    return plain ``str``); ``answer.text``, ``answer.usage.total_tokens``,
    ``answer.cost_usd``, ``answer.provider``, ``answer.model``, ``answer.latency_s``,
    ``answer.cached``, ``answer.finish_reason`` and ``answer.tool_calls`` read the call that
    produced it, as on the ``Completion`` ``ai.generate`` returns (``answer.completion``).
    ``.text`` is the stored text itself (for ``-f code``: the code, while
    ``answer.completion.text`` is the whole answer). Without a completion the call
    attributes are ``None`` (``tool_calls``: empty).

    Plain Python: exported scripts build the same object (``KiteText.from_completion``).
    """

    completion: Completion | None

    def __new__(cls, text: str, completion: Completion | None = None) -> KiteText:
        obj = super().__new__(cls, text)
        obj.completion = completion
        return obj

    @classmethod
    def from_completion(cls, completion: Completion, text: str | None = None) -> KiteText:
        """The answer of ``completion`` (or ``text`` derived from it, e.g. its code block)."""
        return cls(completion.text if text is None else text, completion)

    def __reduce__(self) -> tuple[Any, ...]:  # pickles as a plain str plus its completion
        return (KiteText, (str(self), self.completion))

    @property
    def text(self) -> str:
        """The text as a plain ``str``."""
        return str.__str__(self)

    @property
    def usage(self) -> Usage | None:
        return None if self.completion is None else self.completion.usage

    @property
    def cost_usd(self) -> float | None:
        """USD; None when unknown (unpriced model) or there is no completion."""
        return None if self.completion is None else self.completion.cost_usd

    @property
    def provider(self) -> str | None:
        return None if self.completion is None else self.completion.provider

    @property
    def model(self) -> str | None:
        return None if self.completion is None else self.completion.model

    @property
    def latency_s(self) -> float | None:
        return None if self.completion is None else self.completion.latency_s

    @property
    def cached(self) -> bool | None:
        return None if self.completion is None else self.completion.cached

    @property
    def finish_reason(self) -> str | None:
        return None if self.completion is None else self.completion.finish_reason

    @property
    def tool_calls(self) -> list[ToolCall]:
        return [] if self.completion is None else list(self.completion.tool_calls)


# -- parsing the model's text ----------------------------------------------------------


def extract_code(text: str) -> tuple[str, str]:
    """``(code, language)`` from the first fenced block, or the whole text if none."""
    match = _FENCE.search(text)
    if match is None:
        return text.strip("\n"), ""
    return match.group("body").strip("\n"), match.group("lang") or ""


def parse_json(text: str) -> Any:
    """The JSON value in ``text`` (a ```json fence is allowed); OutputParseError if none."""
    candidate = text.strip()
    if candidate.startswith("```"):
        candidate = extract_code(candidate)[0].strip()
    try:
        return json.loads(candidate)
    except json.JSONDecodeError as exc:
        snippet = candidate if len(candidate) <= 200 else candidate[:200] + "..."
        raise OutputParseError(
            f"the answer is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno}): "
            f"{snippet!r}. Ask for JSON only, or use -f text"
        ) from None


def to_dataframe(value: Any) -> Any:
    """A DataFrame from JSON records (a list of objects), a dict of columns, or one object.

    A dict holding exactly one list of records (``{"rows": [...]}``) is unwrapped.
    """
    import pandas as pd

    if isinstance(value, str):
        value = parse_json(value)
    if isinstance(value, dict):
        lists = [v for v in value.values() if isinstance(v, list)]
        if len(value) == 1 and len(lists) == 1 and all(isinstance(r, dict) for r in lists[0]):
            value = lists[0]
        elif lists and len(lists) == len(value):
            return pd.DataFrame(value)
        else:
            value = [value]
    if not isinstance(value, list) or not all(isinstance(row, dict) for row in value):
        raise OutputParseError(
            "-f df needs JSON records (a list of objects) or a dict of columns, got "
            f"{_describe(value)}; ask the model for a JSON array of objects"
        )
    return pd.DataFrame.from_records(value)


def _describe(value: Any) -> str:
    text = json.dumps(value, default=str)
    return f"{type(value).__name__} {text[:80]!r}"


def parse_output(text: str, fmt: str, completion: Completion | None = None) -> Any:
    """The value ``-o VAR`` stores for an answer ``text`` shown as ``fmt``."""
    if fmt == "json":
        return parse_json(text)
    if fmt == "df":
        return to_dataframe(parse_json(text))
    if fmt == "code":
        return KiteText(extract_code(text)[0], completion)
    return KiteText(text, completion)


# -- footer and provenance -------------------------------------------------------------


def escape_dollars(text: str) -> str:
    """Escape ``$`` so Markdown renderers do not start LaTeX math."""
    return re.sub(r"(?<!\\)\$", r"\\$", text)


def footer_text(result: Completion | RunResult) -> str:
    """``openai/gpt-4o-mini · 42 tokens (12 in, 30 out) · $0.000020 · 840 ms · not cached``."""
    if isinstance(result, RunResult):
        head = f"agent {result.agent or '?'}"
        state = "succeeded" if result.success else f"failed: {result.error or 'no answer'}"
        tail = [_count(result.iterations, "step"), _count(len(result.tool_calls), "tool call"),
                state]
        tokens, prompt, answer = result.total_tokens, result.prompt_tokens, result.completion_tokens
        cost, latency = result.cost_usd, result.latency_s
    else:
        head = f"{result.provider}/{result.model}"
        usage = result.usage
        tokens, prompt, answer = usage.total_tokens, usage.prompt_tokens, usage.completion_tokens
        if result.cached:  # nothing was spent or waited for this time
            return " · ".join([head, f"{tokens} tokens ({prompt} in, {answer} out)", "$0",
                               "cached"])
        tail = ["not cached"]
        cost, latency = result.cost_usd, result.latency_s
    cost_text = "cost unknown" if cost is None else f"${cost:.6f}"
    parts = [head, f"{tokens} tokens ({prompt} in, {answer} out)", cost_text,
             _duration(latency), *tail]
    return " · ".join(parts)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def provenance(
    *,
    target: str | None,
    provider: str | None,
    model: str | None,
    params: Mapping[str, Any],
    prompt: str,
    fmt: str,
    system: str | None = None,
    session: str | None = None,
    agent: str | None = None,
    cached: bool | None = None,
) -> dict[str, Any]:
    """What produced an output, for ``metadata["kite_lab"]`` (export --check reads it)."""
    from kite_lab._version import __version__

    info: dict[str, Any] = {
        "target": target,
        "provider": provider,
        "model": model,
        "params": dict(params),
        "format": fmt,
        "prompt_sha256": hashlib.sha256(prompt.encode("utf-8")).hexdigest(),
        "kite_lab_version": __version__,
    }
    optional = {"system_sha256": _sha(system), "session": session, "agent": agent,
                "cached": cached}
    info.update({k: v for k, v in optional.items() if v is not None})
    return info


def _sha(text: str | None) -> str | None:
    return hashlib.sha256(text.encode("utf-8")).hexdigest() if text is not None else None


# -- display objects -------------------------------------------------------------------


@dataclass
class StreamView:
    """The partial answer while it streams (plain text, Markdown for -f markdown)."""

    text: str
    fmt: str = "markdown"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        shown = self.text + " ▍"
        if self.fmt == "markdown":
            return {"text/markdown": shown, "text/plain": shown}
        return {"text/plain": shown}


@dataclass
class CellOutput:
    """One finished ``%%kite`` output: the answer in its format, a footer, provenance."""

    text: str
    fmt: str
    value: Any = None  # parsed value for json/df/code
    footer: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def _repr_mimebundle_(
        self, include: Any = None, exclude: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        data = getattr(self, f"_bundle_{self.fmt}")()
        return data, {"kite_lab": self.metadata}

    # footers in each flavour
    def _md_footer(self) -> str:
        if not self.footer:
            return ""
        escaped = re.sub(r"([\\`*_\[\]<>#|~])", r"\\\1", self.footer)
        return f"\n\n*{escape_dollars(escaped)}*"

    def _html_footer(self) -> str:
        if not self.footer:
            return ""
        return (f'<div class="kite-footer" style="opacity:.7;font-size:85%;margin-top:.5em">'
                f"{html.escape(self.footer)}</div>")

    def _plain_footer(self) -> str:
        return f"\n\n— {self.footer}" if self.footer else ""

    def _bundle_markdown(self) -> dict[str, Any]:
        return {"text/markdown": self.text + self._md_footer(),
                "text/plain": self.text + self._plain_footer()}

    def _bundle_text(self) -> dict[str, Any]:
        return {"text/plain": self.text + self._plain_footer()}

    def _bundle_code(self) -> dict[str, Any]:
        code, lang = extract_code(self.text)
        fence = "~~~~" if "```" in code else "```"
        return {"text/markdown": f"{fence}{lang}\n{code}\n{fence}" + self._md_footer(),
                "text/plain": code + self._plain_footer()}

    def _bundle_json(self) -> dict[str, Any]:
        pretty = json.dumps(self.value, indent=2, ensure_ascii=False, default=str)
        fence = "~~~~" if "```" in pretty else "```"
        return {"text/markdown": f"{fence}json\n{pretty}\n{fence}" + self._md_footer(),
                "text/plain": pretty + self._plain_footer()}

    def _bundle_html(self) -> dict[str, Any]:
        return {"text/html": self.text + self._html_footer(),
                "text/plain": self.text + self._plain_footer()}

    def _bundle_df(self) -> dict[str, Any]:
        frame = self.value
        return {"text/html": frame.to_html(max_rows=50) + self._html_footer(),
                "text/plain": frame.to_string(max_rows=50) + self._plain_footer()}
