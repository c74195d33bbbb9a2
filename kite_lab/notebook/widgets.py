"""Live widgets (ipywidgets 8): an agent run, a circuit breaker, a memory search.

Why they update the way they do: agent and breaker events are emitted on kite_lab's
background loop thread, not the kernel thread. A widget therefore never writes through an
``Output`` widget from a callback; it *reassigns* traits (``self.events = [*old, new]``,
``self.timeline.value = html``), which ipywidgets turns into one comm message each, safe
from any thread. Button clicks arrive on the kernel thread and may call sync APIs.

Each widget also carries its data as plain traits (``events``, ``state``, ``hits``), so a
test or a script can read what it shows, and has a Markdown repr for frontends without a
widget manager (nbconvert, GitHub).
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable
from typing import Any

import ipywidgets as W
import traitlets as T

from kite_lab.core.errors import KiteError

__all__ = ["AgentRunWidget", "BreakerInspector", "MemoryExplorer", "load_with_progress"]

_STATE_COLOR = {"closed": "#2e7d32", "half_open": "#f9a825", "open": "#c62828"}


class _MarkdownRepr:
    """Adds ``text/markdown`` to a widget's mime bundle (shown where widgets cannot be)."""

    def to_markdown(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        data = super()._repr_mimebundle_(**kwargs)  # type: ignore[misc]
        if data is None:
            data = {"text/plain": repr(self)}
        data["text/markdown"] = self.to_markdown()
        return data


def _badge(state: str) -> str:
    color = _STATE_COLOR.get(state, "#555")
    return (f'<span class="kite-badge kite-badge-{html.escape(state)}" style="background:{color};'
            f'color:white;padding:2px 10px;border-radius:10px;font-weight:600">'
            f"{html.escape(state)}</span>")


# -- agent runs ------------------------------------------------------------------------


class AgentRunWidget(_MarkdownRepr, W.VBox):
    """An input, a Run button, a live timeline of steps, the answer and totals.

    >>> w = AgentRunWidget(agent); w          # click Run in the notebook
    >>> w.run("What is 6 * 7?")               # or run it from code (waits)
    """

    status = T.Unicode("idle")
    #: one dict per agent/tool/LLM event of the current run
    events: T.List[dict[str, Any]] = T.List()
    answer = T.Unicode("")
    totals = T.Dict()
    result = T.Any(None)

    def __init__(self, agent: Any, **kwargs: Any) -> None:
        self.agent = agent
        self.prompt = W.Textarea(placeholder=f"Ask {agent.name}…",
                                 layout=W.Layout(width="100%", height="4em"))
        self.run_button = W.Button(description="Run", button_style="primary", icon="play")
        self.status_label = W.HTML(_status_html("idle"))
        self.timeline = W.HTML("<i>no run yet</i>")
        self.answer_box = W.HTML("")
        self.totals_label = W.HTML("")
        super().__init__(
            [W.HTML(f"<b>Agent</b> <code>{html.escape(agent.name)}</code>"), self.prompt,
             W.HBox([self.run_button, self.status_label]), self.timeline, self.answer_box,
             self.totals_label],
            **kwargs,
        )
        self.add_class("kite-agent-run")
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._done.set()
        self._future: Any = None
        self._subs: list[Any] = []
        self.run_button.on_click(lambda _: self.start())

    # -- running -----------------------------------------------------------------------
    def start(self, prompt: str | None = None) -> None:
        """Start a run in the background (what the Run button does)."""
        import asyncio

        from kite_lab.core.runner import background_loop

        if not self._done.is_set():
            return  # one run at a time
        text = (prompt if prompt is not None else self.prompt.value).strip()
        if not text:
            self.status = "error"
            self.status_label.value = _status_html("error", "type a question first")
            return
        self.prompt.value = text
        self._done.clear()
        self.events, self.answer, self.totals, self.result = [], "", {}, None
        self.status = "running"
        self.status_label.value = _status_html("running")
        self.timeline.value = "<i>starting…</i>"
        self.answer_box.value = ""
        self.run_button.disabled = True
        bus = self.agent.kite.event_bus
        self._subs = [bus.subscribe(p, self._on_event)
                      for p in ("agent:*", "tool:*", "llm:response", "llm:error")]
        try:
            self._future = asyncio.run_coroutine_threadsafe(self.agent.run(text),
                                                            background_loop())
        except BaseException:
            self._finish(None, error="could not start the run")
            raise
        self._future.add_done_callback(self._on_done)

    def wait(self, timeout: float | None = 60) -> Any:
        """Block until the current run has finished and the widget shows it; its RunResult."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"the agent run did not finish within {timeout} s")
        return self.result

    def run(self, prompt: str, timeout: float | None = 60) -> Any:
        """Run ``prompt`` and wait for the result (from code, not the button)."""
        self.start(prompt)
        return self.wait(timeout)

    def _on_event(self, event: Any) -> None:
        data = event.data
        if event.name.startswith(("agent:", "tool:")):
            if data.get("agent") != self.agent.name:
                return
        elif self._done.is_set():
            return  # an LLM call outside our run
        entry = {"event": event.name, "time": event.time,
                 **{k: v for k, v in data.items() if k not in ("messages",)}}
        with self._lock:
            self.events = [*self.events, entry]
            self.timeline.value = _timeline_html(self.events)

    def _on_done(self, future: Any) -> None:
        if future.cancelled():
            self._finish(None, error="cancelled")
        elif future.exception() is not None:
            exc = future.exception()
            self._finish(None, error=f"{type(exc).__name__}: {exc}")
        else:
            self._finish(future.result())

    def _finish(self, result: Any, error: str | None = None) -> None:
        for sub in self._subs:
            sub.unsubscribe()
        self._subs = []
        with self._lock:
            self.result = result
            if result is not None:
                error = None if result.success else result.error
                self.answer = result.response
                self.totals = {
                    "iterations": result.iterations, "tool_calls": len(result.tool_calls),
                    "prompt_tokens": result.prompt_tokens,
                    "completion_tokens": result.completion_tokens,
                    "cost_usd": result.cost_usd, "latency_s": round(result.latency_s, 3),
                }
                self.answer_box.value = (f"<div class='kite-answer'><b>Answer</b><br>"
                                         f"{html.escape(result.response)}</div>")
                self.totals_label.value = _totals_html(self.totals)
            state = "failed" if error else "done"
            self.status = state
            self.status_label.value = _status_html(state, error)
            self.run_button.disabled = False
        self._done.set()

    def to_markdown(self) -> str:
        lines = [f"**Agent `{self.agent.name}`** — {self.status}"]
        if self.prompt.value:
            lines.append(f"> {self.prompt.value}")
        lines += [f"- {_event_text(e)}" for e in self.events]
        if self.answer:
            lines.append(f"\n**Answer:** {self.answer}")
        if self.totals:
            lines.append(", ".join(f"{k}: {v}" for k, v in self.totals.items()))
        return "\n".join(lines)


def _status_html(state: str, detail: str | None = None) -> str:
    color = {"running": "#1565c0", "done": "#2e7d32", "failed": "#c62828",
             "error": "#c62828"}.get(state, "#555")
    extra = f" — {html.escape(detail)}" if detail else ""
    return f'<span class="kite-status" style="color:{color}">{html.escape(state)}{extra}</span>'


def _event_text(entry: dict[str, Any]) -> str:
    name = entry["event"]
    if name == "llm:response":
        return (f"LLM {entry.get('provider')}/{entry.get('model')}: "
                f"{entry.get('prompt_tokens')}+{entry.get('completion_tokens')} tokens, "
                f"{(entry.get('latency_s') or 0) * 1000:.0f} ms")
    if name == "llm:error":
        return f"LLM error: {entry.get('error')}"
    if name == "agent:start":
        return f"start ({entry.get('agent_type')})"
    if name == "agent:end":
        return "end: " + ("success" if entry.get("success") else f"failed: {entry.get('error')}")
    from kite_lab.core.events import Event
    from kite_lab.notebook.cell import describe_event

    data = {k: v for k, v in entry.items() if k not in ("event", "time")}
    return describe_event(Event(name, data)).strip()


def _timeline_html(events: list[dict[str, Any]]) -> str:
    items = "".join(f"<li class='kite-step kite-{html.escape(e['event'].replace(':', '-'))}'>"
                    f"{html.escape(_event_text(e))}</li>" for e in events[-50:])
    return f"<ol class='kite-timeline' style='margin:4px 0'>{items}</ol>"


def _totals_html(totals: dict[str, Any]) -> str:
    cost = totals.get("cost_usd")
    cost_text = "cost unknown" if cost is None else f"${cost:.6f}"
    return (f"<small>{totals['iterations']} LLM calls · {totals['tool_calls']} tool calls · "
            f"{totals['prompt_tokens']}+{totals['completion_tokens']} tokens · {cost_text} · "
            f"{totals['latency_s']} s</small>")


# -- circuit breaker -------------------------------------------------------------------


class BreakerInspector(_MarkdownRepr, W.VBox):
    """State badge, counters, editable thresholds, Reset/Trip, and a timeline plot."""

    state = T.Unicode("closed")
    events: T.List[dict[str, Any]] = T.List()  # breaker:* events of this breaker, oldest first
    stats = T.Dict()

    def __init__(self, ai: Any, provider: str | None = None, **kwargs: Any) -> None:
        self.ai = ai
        self.breaker = ai.breaker_for(provider) if provider else ai.circuit_breaker
        config = self.breaker.config
        self.badge = W.HTML()
        self.counters = W.HTML()
        self.threshold = W.BoundedIntText(config.failure_threshold, min=1, max=10_000,
                                          description="failures to open", style=_WIDE)
        self.timeout = W.BoundedFloatText(config.timeout_seconds, min=0.001, max=86_400,
                                          description="open for (s)", style=_WIDE)
        self.reason = W.Text(placeholder="reason for a manual trip", layout=W.Layout(width="40%"))
        self.reset_button = W.Button(description="Reset", icon="undo", button_style="success")
        self.trip_button = W.Button(description="Trip", icon="bolt", button_style="danger")
        self.refresh_button = W.Button(description="Refresh", icon="refresh")
        self.message = W.HTML()
        self.plot = _timeline_widget()
        super().__init__(
            [W.HBox([W.HTML(f"<b>Circuit breaker</b> <code>{html.escape(self.breaker.name)}"
                            f"</code> ({html.escape(self.breaker.backend)})"), self.badge]),
             self.counters, W.HBox([self.threshold, self.timeout]),
             W.HBox([self.reset_button, self.trip_button, self.reason, self.refresh_button]),
             self.message, self.plot],
            **kwargs,
        )
        self.add_class("kite-breaker-inspector")
        self._lock = threading.Lock()
        self.threshold.observe(self._set_threshold, names="value")
        self.timeout.observe(self._set_timeout, names="value")
        self.reset_button.on_click(lambda _: self._manual(self.breaker.reset))
        self.trip_button.on_click(lambda _: self._manual(
            self.breaker.trip, self.reason.value or "tripped from the inspector"))
        self.refresh_button.on_click(lambda _: self.refresh())
        past = [e for e in ai.event_bus.history("breaker:*")
                if e.data.get("name") == self.breaker.name]
        self.events = [_breaker_entry(e) for e in past]
        self._sub = ai.event_bus.subscribe("breaker:*", self._on_event)
        self.refresh()

    def refresh(self) -> None:
        """Read state and counters from the store now (kernel thread)."""
        stats = self.breaker.get_stats()
        with self._lock:
            self.stats = stats
            self._show_state(stats["state"])
            self.counters.value = _counters_html(stats)
            self._draw()

    def _manual(self, action: Callable[..., Any], *args: Any) -> None:
        try:
            action(*args)
        except KiteError as exc:
            self.message.value = f"<span style='color:#c62828'>{html.escape(str(exc))}</span>"
            return
        self.message.value = ""
        self.refresh()

    def _set_threshold(self, change: dict[str, Any]) -> None:
        self._configure("failure_threshold", change)

    def _set_timeout(self, change: dict[str, Any]) -> None:
        self._configure("timeout_seconds", change)

    def _configure(self, name: str, change: dict[str, Any]) -> None:
        try:
            setattr(self.breaker.config, name, change["new"])
        except KiteError as exc:
            self.message.value = f"<span style='color:#c62828'>{html.escape(str(exc))}</span>"
            return
        self.message.value = f"<small>{name} = {change['new']}</small>"

    def _on_event(self, event: Any) -> None:
        if event.data.get("name") != self.breaker.name:
            return
        entry = _breaker_entry(event)
        with self._lock:
            self.events = [*self.events, entry]
            if event.name == "breaker:state":
                self._show_state(entry["new"])
            self._draw()

    def _show_state(self, state: str) -> None:
        self.state = state
        self.badge.value = _badge(state)

    def _draw(self) -> None:
        if self.plot is None or not hasattr(self.plot, "data"):
            return
        moves = [e for e in self.events if e["event"] == "breaker:state"]
        failures = [e for e in self.events if e["event"] == "breaker:failure"]
        y = {"closed": 0, "half_open": 1, "open": 2}
        with self.plot.batch_update():
            self.plot.data[0].x = [_iso(e["time"]) for e in moves]
            self.plot.data[0].y = [y.get(e["new"], 0) for e in moves]
            self.plot.data[0].text = [e.get("reason") or "" for e in moves]
            self.plot.data[1].x = [_iso(e["time"]) for e in failures]
            self.plot.data[1].y = [0.15] * len(failures)
            self.plot.data[1].text = [e.get("error") or "" for e in failures]

    def close(self) -> None:
        self._sub.unsubscribe()
        super().close()

    def to_markdown(self) -> str:
        counters = ", ".join(f"{k}: {self.stats.get(k)}" for k in
                             ("total_calls", "failed_calls", "rejected_calls",
                              "consecutive_failures") if k in self.stats)
        moves = [f"- {e['old']} → {e['new']} ({e.get('reason') or ''})"
                 for e in self.events if e["event"] == "breaker:state"]
        return "\n".join([f"**Circuit breaker `{self.breaker.name}`: {self.state}**",
                          counters, *moves])


_WIDE = {"description_width": "initial"}


def _breaker_entry(event: Any) -> dict[str, Any]:
    return {"event": event.name, "time": event.time, **event.data}


def _iso(t: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(t, UTC).isoformat()


def _counters_html(stats: dict[str, Any]) -> str:
    keys = ("total_calls", "successful_calls", "failed_calls", "rejected_calls",
            "consecutive_failures")
    cells = "".join(f"<td style='padding:0 8px'><b>{stats.get(k, 0)}</b><br>"
                    f"<small>{k.replace('_', ' ')}</small></td>" for k in keys)
    return f"<table class='kite-counters'><tr>{cells}</tr></table>"


def _timeline_widget() -> Any:
    """A plotly FigureWidget when anywidget is installed, else a note."""
    try:
        import plotly.graph_objects as go

        figure = go.FigureWidget()
    except ImportError:
        return W.HTML("<small>(install anywidget for the live timeline plot)</small>")
    figure.add_scatter(x=[], y=[], mode="lines+markers", line_shape="hv", name="state",
                       hovertemplate="%{x}<br>%{text}")
    figure.add_scatter(x=[], y=[], mode="markers", name="failure",
                       marker={"symbol": "x", "size": 10, "color": "#c62828"},
                       hovertemplate="%{x}<br>%{text}")
    figure.update_layout(height=220, margin={"l": 60, "r": 10, "t": 10, "b": 30},
                         template="plotly_white",
                         yaxis={"tickvals": [0, 1, 2], "ticktext": ["closed", "half_open", "open"],
                                "range": [-0.5, 2.5]})
    return figure


# -- memory ------------------------------------------------------------------------------


class MemoryExplorer(_MarkdownRepr, W.VBox):
    """A search box over vector memory returning a table of hits."""

    query = T.Unicode("")
    hits: T.List[dict[str, Any]] = T.List()  # Hit.to_dict() of the last search

    def __init__(self, ai: Any, top_k: int = 5, **kwargs: Any) -> None:
        self.ai = ai
        self.search_box = W.Text(placeholder="search memory…", layout=W.Layout(width="50%"),
                                 continuous_update=False)
        self.top_k = W.BoundedIntText(top_k, min=1, max=100, description="top k",
                                      layout=W.Layout(width="140px"))
        self.search_button = W.Button(description="Search", icon="search")
        self.table = W.HTML("")
        super().__init__([W.HBox([self.search_box, self.top_k, self.search_button]), self.table],
                         **kwargs)
        self.add_class("kite-memory-explorer")
        self.search_button.on_click(lambda _: self.search())
        self.search_box.observe(lambda change: self.search(), names="value")

    def search(self, query: str | None = None) -> list[dict[str, Any]]:
        """Search for ``query`` (default: the box's text) and show the hits."""
        if query is not None:
            with self.search_box.hold_trait_notifications():
                self.search_box.value = query
        text = self.search_box.value.strip()
        if not text:
            self.hits, self.table.value = [], ""
            return []
        try:
            found = self.ai.vector_memory.search(text, top_k=self.top_k.value)
        except KiteError as exc:
            self.table.value = f"<span style='color:#c62828'>{html.escape(str(exc))}</span>"
            return []
        self.query = text
        self.hits = [hit.to_dict() for hit in found]
        self.table.value = _hits_html(self.hits)
        return self.hits

    def to_markdown(self) -> str:
        rows = [f"| {h['score']:.3f} | {h['doc_id']} | {h['text'][:80]} |" for h in self.hits]
        head = f"**Memory search** `{self.query}`" if self.query else "**Memory search**"
        return "\n".join([head, "", "| score | doc | text |", "|---|---|---|", *rows])


def _hits_html(hits: list[dict[str, Any]]) -> str:
    if not hits:
        return "<i>no hits</i>"
    rows = "".join(
        f"<tr><td>{h['score']:.3f}</td><td><code>{html.escape(h['doc_id'])}</code></td>"
        f"<td>{html.escape(h['text'][:300])}</td></tr>" for h in hits)
    return ("<table class='kite-hits'><thead><tr><th>score</th><th>document</th><th>text</th>"
            f"</tr></thead><tbody>{rows}</tbody></table>")


def load_with_progress(ai: Any, path: str, doc_id: str | None = None) -> Any:
    """``ai.load_document`` with a tqdm.notebook progress bar (one step per file)."""
    from tqdm.notebook import tqdm

    bar: Any = None

    def progress(done: int, total: int, current: Any) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, unit="file", desc="Loading documents")
        bar.set_postfix_str(str(current)[-40:], refresh=False)
        bar.update(done - bar.n)

    try:
        return ai.load_document(path, doc_id=doc_id, progress=progress)
    finally:
        if bar is not None:
            bar.close()
