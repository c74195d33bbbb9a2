"""``TraceView``: the span tree of an agent run (or of a notebook cell), read from the
call log: steps, tools with arguments and results, tokens, cost, latency, cache hits.

Why from the log and not from a tracing server: the log already holds every call, run
and tool call with its ``run_id``/``parent_id`` links and timings, in any kernel or
process, so a run can be looked at after the fact with no collector. It shows as a text
tree anywhere (``repr``) and as an HTML waterfall in a notebook (no widget needed).
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kite_lab.core.errors import InvalidInput

if TYPE_CHECKING:
    from kite_lab.log.record import CallRecord
    from kite_lab.log.store import CallLogStore

__all__ = ["Span", "TraceView"]


@dataclass
class Span:
    """One row of the log as a span: its start/end (epoch seconds) and its children."""

    record: CallRecord
    children: list[Span] = field(default_factory=list)

    @property
    def end(self) -> float:
        return self.record.ts

    @property
    def start(self) -> float:
        return self.record.ts - (self.record.latency_s or 0.0)

    def label(self) -> str:
        r = self.record
        if r.kind == "llm":
            what = f"llm {r.model}"
        elif r.kind == "tool":
            what = f"tool {r.name}({_short(r.params)})"
            if r.answer is not None and not r.error:
                what += f" -> {_short(r.answer)}"
        elif r.kind == "agent":
            what = f"agent {r.name}"
        else:
            what = f"{r.kind} {r.name or r.request_id}"
        facts = []
        if r.prompt_tokens is not None or r.completion_tokens is not None:
            facts.append(f"{r.prompt_tokens or 0}+{r.completion_tokens or 0} tokens")
        if r.cost_usd is not None:
            facts.append(f"${r.cost_usd:.6f}")
        if r.latency_s is not None:
            facts.append(f"{r.latency_s * 1000:.0f} ms")
        flags = [name for name in ("cached", "replayed", "stream") if getattr(r, name)]
        status = f"ERROR {r.error}" if r.error else "ok"
        return " · ".join([what, *facts, status, *flags])


def _short(text: str | None, limit: int = 40) -> str:
    if text is None:
        return ""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class TraceView:
    """Span trees (one per root: an agent run, or a cell's top-level calls)."""

    def __init__(self, roots: list[Span], title: str) -> None:
        self.roots = roots
        self.title = title

    # -- building ----------------------------------------------------------------------
    @classmethod
    def of(cls, store: CallLogStore, source: Any = None) -> TraceView:
        """The trace of ``source``: a RunResult, a run id, ``{"cell": id}``, or None (the
        latest agent run in the log)."""
        from kite_lab.log.record import LogQuery

        if isinstance(source, dict) and "cell" in source:
            rows = [r for r in store.records() if r.cell_id == source["cell"]]
            return cls(_tree(rows), f"cell {source['cell']}")
        run_id = cls._run_id(store, source)
        rows = store.records(LogQuery(run_id=run_id))
        rows += [r for r in store.records(LogQuery(kind="agent")) if r.parent_id == run_id]
        nested = [r.run_id for r in rows if r.kind == "agent" and r.run_id != run_id]
        for inner in nested:
            rows += store.records(LogQuery(run_id=inner))
        unique = {(r.kind, r.request_id, r.ts): r for r in rows}
        roots = [s for s in _tree(list(unique.values())) if s.record.run_id == run_id
                 and s.record.kind == "agent"]
        return cls(roots, f"run {run_id}")

    @staticmethod
    def _run_id(store: CallLogStore, source: Any) -> str:
        from kite_lab.log.record import LogQuery

        if isinstance(source, str):
            return source
        runs = store.records(LogQuery(kind="agent", newest_first=True, limit=500))
        if source is not None:  # a RunResult: its agent and its exact latency
            agent, latency = getattr(source, "agent", None), getattr(source, "latency_s", None)
            runs = [r for r in runs if r.name == agent and r.latency_s == latency]
        if not runs:
            raise InvalidInput("no such agent run in the call log (is KITE_CALL_LOG on, and "
                               "did the run happen with this KITE_HOME?)")
        return str(runs[0].run_id)

    # -- showing -----------------------------------------------------------------------
    def spans(self) -> list[Span]:
        out: list[Span] = []

        def walk(span: Span) -> None:
            out.append(span)
            for child in span.children:
                walk(child)

        for root in self.roots:
            walk(root)
        return out

    def text(self) -> str:
        lines = [self.title]

        def walk(span: Span, prefix: str, last: bool, top: bool) -> None:
            branch = "" if top else ("└─ " if last else "├─ ")
            lines.append(prefix + branch + span.label())
            inner = prefix + ("" if top else ("   " if last else "│  "))
            for i, child in enumerate(span.children):
                walk(child, inner, i == len(span.children) - 1, False)

        for root in self.roots:
            walk(root, "", True, True)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.text()

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self.text())

    def _repr_html_(self) -> str:
        spans = self.spans()
        if not spans:
            return f"<p>{html.escape(self.title)}: no spans</p>"
        t0 = min(s.start for s in spans)
        total = max(max(s.end for s in spans) - t0, 1e-9)
        colours = {"agent": "#6c5ce7", "llm": "#0984e3", "tool": "#00b894"}
        rows = []

        def walk(span: Span, depth: int) -> None:
            left = (span.start - t0) / total * 100
            width = max((span.end - span.start) / total * 100, 0.4)
            colour = "#d63031" if span.record.error else colours.get(span.record.kind, "#636e72")
            label = html.escape(span.label())
            rows.append(
                f'<div style="display:flex;align-items:center;font:12px monospace;margin:1px 0">'
                f'<div style="width:45%;padding-left:{depth * 14}px;white-space:nowrap;'
                f'overflow:hidden;text-overflow:ellipsis" title="{label}">{label}</div>'
                f'<div style="width:55%;position:relative;height:12px;background:#f1f2f6">'
                f'<div style="position:absolute;left:{left:.2f}%;width:{width:.2f}%;'
                f'height:100%;background:{colour}"></div></div></div>')
            for child in span.children:
                walk(child, depth + 1)

        for root in self.roots:
            walk(root, 0)
        head = (f"<b>{html.escape(self.title)}</b> · {len(spans)} spans · "
                f"{total * 1000:.0f} ms")
        return f'<div class="kite-trace">{head}{"".join(rows)}</div>'

    def to_dict(self) -> dict[str, Any]:
        def one(span: Span) -> dict[str, Any]:
            return {**span.record.to_dict(), "start": span.start,
                    "children": [one(c) for c in span.children]}

        return {"title": self.title, "roots": [one(r) for r in self.roots]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), default=str)


def _tree(rows: list[CallRecord]) -> list[Span]:
    """Spans linked by ``parent_id`` (an agent row's id is its ``run_id``), by start time."""
    spans = [Span(r) for r in rows]
    by_id = {s.record.run_id: s for s in spans if s.record.kind == "agent"}
    roots = []
    for span in sorted(spans, key=lambda s: (s.start, s.end)):
        r = span.record
        parent = by_id.get(r.parent_id) if r.parent_id else None
        if parent is not None and parent is not span:
            parent.children.append(span)
        else:
            roots.append(span)
    return roots
