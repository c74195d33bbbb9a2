"""One ``%%kite`` cell, from its line and body to the output and the captured value.

Why it runs this way: the kernel's own event loop must never be blocked or re-entered
(``asyncio.run`` fails inside Jupyter), so every call is a coroutine handed to kite_lab's
background loop (``kite_lab.core.runner``) while the kernel thread waits interruptibly;
Ctrl-C / "Interrupt kernel" cancels it. Streamed chunks and agent events come back to the
kernel thread through a queue, and only the kernel thread touches the display, so outputs
always land in the right cell.

No hidden state between cells: a cell sees the notebook's variables (for ``{name}``), the
magic's configuration and, only with ``--session ID``, that conversation's history.
"""

from __future__ import annotations

import queue
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.display import display

from kite_lab.core.errors import AgentError, KiteError, OutputParseError
from kite_lab.core.runner import iterate_sync, run_sync
from kite_lab.core.types import Completion, Message, RunResult
from kite_lab.notebook.interpolate import interpolate
from kite_lab.notebook.magic_args import KiteCellOptions, model_only_given, parse_kite_line
from kite_lab.notebook.render import (
    CellOutput,
    StreamView,
    footer_text,
    parse_output,
    provenance,
)

if TYPE_CHECKING:
    from kite_lab.kite import Kite
    from kite_lab.notebook.magics import KiteMagics

__all__ = ["CellRunner", "resolve_alias"]



def resolve_alias(target: str | None, aliases: Mapping[str, str]) -> str | None:
    """Follow aliases (an alias may name another alias); a cycle is a UsageError."""
    seen: list[str] = []
    while target is not None and target in aliases:
        if target in seen:
            raise UsageError(f"%%kite: alias cycle: {' -> '.join([*seen, target])}")
        seen.append(target)
        target = aliases[target]
    return target


@dataclass
class _Prepared:
    prompt: str
    system: str | None
    fmt: str
    stream: bool
    target: str | None  # after aliases


class CellRunner:
    """Runs ``%%kite`` cells for one KiteMagics (its config, its Kite, its shell)."""

    def __init__(self, magics: KiteMagics) -> None:
        self.magics = magics

    @property
    def ai(self) -> Kite:
        return self.magics.ai

    # -- entry point -----------------------------------------------------------------
    def run(self, line: str, body: str, namespace: Mapping[str, Any]) -> Any:
        opts = parse_kite_line(line)
        prep = self._prepare(opts, body, namespace)
        if prep.target is not None and prep.target.startswith("agent:"):
            value, failure = self._run_agent(opts, prep, namespace)
        elif opts.tools:
            value, failure = self._run_with_tools(opts, prep, namespace)
        else:
            value, failure = self._run_model(opts, prep), None
        if opts.out is not None:
            self.magics.shell.user_ns[opts.out] = value
        if failure is not None:
            raise failure
        return None

    def _prepare(self, opts: KiteCellOptions, body: str, ns: Mapping[str, Any]) -> _Prepared:
        prompt, system = body.strip("\n").rstrip(), opts.system
        if opts.interpolate:
            visible = _visible(ns, self.magics.shell)
            prompt = self._interpolate(prompt, visible)
            if system is not None:
                system = self._interpolate(system, visible)
        if not prompt.strip():
            raise UsageError("%%kite: the cell is empty; write the prompt below the %%kite line")
        target = resolve_alias(opts.target or self.magics.default_model or None,
                               self.magics.aliases)
        fmt = opts.format or self.magics.default_format
        stream = self.magics.stream if opts.stream is None else opts.stream
        return _Prepared(prompt, system, fmt, stream, target)

    @staticmethod
    def _interpolate(text: str, ns: Mapping[str, Any]) -> str:
        result = interpolate(text, ns)
        for source, reason in result.skipped:
            print(f"kite: {{{source}}} left as written ({reason})", file=sys.stderr)
        return result.text

    # -- plain model calls -------------------------------------------------------------
    def _run_model(self, opts: KiteCellOptions, prep: _Prepared) -> Any:
        messages = self._history(opts.session) + [Message("user", prep.prompt)]
        kwargs: dict[str, Any] = {"messages": messages, "model": prep.target,
                                  "system": prep.system, **opts.model_params()}
        if opts.dry_run:
            return self._dry_run_model(opts, prep, kwargs)
        handle = None
        if prep.stream:
            completion, handle = self._stream(prep, kwargs, opts.cache)
        else:
            completion = run_sync(self.ai.agenerate(cache=opts.cache, **kwargs))
        meta = provenance(
            target=opts.target, provider=completion.provider, model=completion.model,
            params=opts.model_params(), prompt=prep.prompt, fmt=prep.fmt,
            system=prep.system, session=opts.session, cached=completion.cached,
        )
        value = self._show(completion.text, prep.fmt, completion, meta, handle)
        if opts.session:
            self._remember(opts.session, prep.prompt, completion.text)
        if prep.fmt == "code" and self.magics.code_next_cell:
            self.magics.shell.set_next_input(str(value), replace=False)
        return value

    def _stream(self, prep: _Prepared, kwargs: dict[str, Any], cache: bool | None
                ) -> tuple[Completion, Any]:
        handle = display(StreamView("", prep.fmt), display_id=True)
        interval = self.magics.stream_interval
        text, last, completion = "", 0.0, None
        try:
            for chunk in iterate_sync(self.ai.astream_chunks(cache=cache, **kwargs)):
                if chunk.completion is not None:
                    completion = chunk.completion
                if chunk.text:
                    text += chunk.text
                    now = time.monotonic()
                    if now - last >= interval:
                        handle.update(StreamView(text, prep.fmt))
                        last = now
        except KeyboardInterrupt:
            handle.update(StreamView(text + "\n\n[interrupted]", "text"))
            raise
        if completion is None:
            raise KiteError("the stream ended without a final answer; run the cell again")
        return completion, handle

    def _dry_run_model(self, opts: KiteCellOptions, prep: _Prepared, kwargs: dict[str, Any]
                       ) -> dict[str, Any]:
        from kite_lab.pipeline import should_cache

        plan: dict[str, Any] = {"target": prep.target, "format": prep.fmt,
                                "stream": prep.stream, "session": opts.session,
                                "history_messages": len(kwargs["messages"]) - 1}
        try:
            provider, request = self.ai.build_request(**kwargs)
        except KiteError as exc:
            plan["error"] = f"{type(exc).__name__}: {exc}"
        else:
            plan.update(provider=provider.name, model=request.model, params=request.params,
                        cached=bool(self.ai.response_cache()) and should_cache(request, opts.cache))
        plan.update(system=prep.system, prompt=prep.prompt)
        display(_dry_run_view(plan))
        return plan

    def _show(self, text: str, fmt: str, completion: Completion | None,
              meta: dict[str, Any], handle: Any, footer: str | None = None) -> Any:
        if footer is None and completion is not None:
            footer = footer_text(completion)
        footer = footer if self.magics.show_usage else None
        try:
            value = parse_output(text, fmt, completion)
        except OutputParseError:
            shown = CellOutput(text, "text", None, footer, meta)
            handle.update(shown) if handle is not None else display(shown)
            raise
        output = CellOutput(text, fmt, value, footer, meta)
        handle.update(output) if handle is not None else display(output)
        return value

    # -- sessions ----------------------------------------------------------------------
    def _history(self, session: str | None) -> list[Message]:
        if session:
            self.magics.sessions_used.add(session)
        if not session or self.magics.max_history <= 0:
            return []
        store = self.ai.session_memory
        window = run_sync(store.awindow(session, max_messages=self.magics.max_history))
        return [m for m in map(Message.from_any, window) if m.role in ("user", "assistant")]

    def _remember(self, session: str, prompt: str, answer: str) -> None:
        store = self.ai.session_memory

        async def _save() -> None:
            meta = {"source": "%%kite"}
            await store.aadd_message(session, "user", prompt, metadata=meta)
            await store.aadd_message(session, "assistant", answer, metadata=meta)

        run_sync(_save())

    # -- agents ------------------------------------------------------------------------
    def _run_agent(self, opts: KiteCellOptions, prep: _Prepared, ns: Mapping[str, Any]
                   ) -> tuple[Any, BaseException | None]:
        name = prep.target[len("agent:"):]  # type: ignore[index]
        given = model_only_given(opts)
        if given:
            raise UsageError(
                f"%%kite: {', '.join('--' + g.replace('_', '-') for g in given)} do not apply "
                f"to agent:{name}; set them on the agent (ai.create_agent(..., model=...))"
            )
        agent = find_agent(name, ns, self.ai)
        return self._run_agent_object(agent, opts, prep, f"agent:{name}")

    def _run_with_tools(self, opts: KiteCellOptions, prep: _Prepared, ns: Mapping[str, Any]
                        ) -> tuple[Any, BaseException | None]:
        from kite_lab.agents.base import Agent

        if opts.model_params():
            raise UsageError("%%kite: --tools runs an agent loop; model parameters are not "
                             "supported with it (create an agent with ai.create_agent)")
        tools = [resolve_tool(name, ns, self.ai) for name in opts.tools]
        agent = Agent(self.ai, "kite-cell", prep.system or "", tools=tools, model=prep.target,
                      history_messages=self.magics.max_history)
        return self._run_agent_object(agent, opts, prep, prep.target)

    def _run_agent_object(self, agent: Any, opts: KiteCellOptions, prep: _Prepared,
                          target: str | None) -> tuple[Any, BaseException | None]:
        if opts.dry_run:
            plan = {"target": target, "agent": agent.name, "model": getattr(agent, "model", None),
                    "tools": [t.name for t in getattr(agent, "tools", [])],
                    "session": opts.session, "format": prep.fmt, "prompt": prep.prompt}
            display(_dry_run_view(plan))
            return plan, None
        if opts.session:
            self.magics.sessions_used.add(opts.session)
        coro = agent.run(prep.prompt, session_id=opts.session)
        if prep.stream:
            result, handle = self._watch_agent(agent, coro, prep.fmt)
        else:
            result, handle = run_sync(coro), None
        meta = provenance(target=target, provider=None, model=getattr(agent, "model", None),
                          params={}, prompt=prep.prompt, fmt=prep.fmt, session=opts.session,
                          agent=agent.name)
        footer = footer_text(result)
        if not result.success:
            self._show(result.response or "(no answer)", "text", None, meta, handle, footer)
            return result, AgentError(f"agent {agent.name!r} failed: {result.error}")
        if prep.fmt in ("json", "df", "code"):
            return self._show(result.response, prep.fmt, None, meta, handle, footer), None
        self._show(result.response, prep.fmt, None, meta, handle, footer)
        return result, None

    def _watch_agent(self, agent: Any, coro: Any, fmt: str) -> tuple[RunResult, Any]:
        """Run on the background loop; show each step as its event arrives."""
        import asyncio

        from kite_lab.core.runner import background_loop

        events: queue.Queue[Any] = queue.Queue()
        bus = getattr(agent, "kite", self.ai).event_bus
        subs = [bus.subscribe(p, _forward(events, agent.name))
                for p in ("agent:step", "tool:call", "tool:result")]
        handle = display(StreamView(f"agent {agent.name}: starting", "text"), display_id=True)
        lines: list[str] = []
        future = asyncio.run_coroutine_threadsafe(coro, background_loop())
        try:
            while True:
                try:
                    event = events.get(timeout=0.1)
                except queue.Empty:
                    if future.done():
                        break
                    continue
                lines.append(describe_event(event))
                handle.update(StreamView("\n".join(lines[-30:]), "text"))
            return future.result(), handle
        except BaseException:
            future.cancel()
            raise
        finally:
            for sub in subs:
                sub.unsubscribe()


def _forward(events: queue.Queue[Any], agent_name: str) -> Callable[[Any], None]:
    def callback(event: Any) -> None:
        if event.data.get("agent") == agent_name:
            events.put(event)

    return callback


def describe_event(event: Any) -> str:
    """One timeline line for an agent event (shared with AgentRunWidget)."""
    data = event.data
    if event.name == "agent:step":
        return f"step {data.get('iteration')}: asking the model ({data.get('kind')})"
    if event.name == "tool:call":
        from kite_lab.agents.guard import describe_arguments

        return f"  → {data.get('tool')}({describe_arguments(data.get('arguments') or {})})"
    if event.name == "tool:result":
        took = f" in {data.get('latency_s', 0) * 1000:.0f} ms"
        if data.get("ok"):
            return f"  ← {data.get('tool')}: {str(data.get('result'))[:120]}{took}"
        return f"  ✗ {data.get('tool')}: {data.get('error')}{took}"
    return event.name


def find_agent(name: str, ns: Mapping[str, Any], ai: Kite) -> Any:
    """The agent a cell names: a notebook variable holding one, else ``ai.agents[name]``."""
    from kite_lab.agents.base import Agent

    candidate = ns.get(name)
    if isinstance(candidate, Agent):
        return candidate
    if name in ai.agents:
        return ai.agents[name]
    known = sorted({*ai.agents, *(k for k, v in ns.items() if isinstance(v, Agent))})
    raise UsageError(
        f"%%kite: no agent named {name!r}; create one with ai.create_agent({name!r}, ...)"
        + (f" (agents: {', '.join(known)})" if known else "")
    )


def resolve_tool(name: str, ns: Mapping[str, Any], ai: Kite) -> Any:
    """A tool by name: one of ``ai.tools``, a built-in, a Tool variable, a notebook function."""
    from kite_lab.agents.builtin_tools import BUILTIN_TOOLS, builtin_tool
    from kite_lab.agents.tools import Tool, build_tool

    if name in ai.tools:
        return ai.tools[name]
    if name in BUILTIN_TOOLS:
        return builtin_tool(ai, name)
    value = ns.get(name)
    if isinstance(value, Tool):
        return value
    if callable(value):
        return build_tool(name, value)
    raise UsageError(f"%%kite: no tool or function named {name!r} (ai tools: "
                     f"{', '.join(ai.tools) or 'none'}; built-in: {', '.join(BUILTIN_TOOLS)})")


def _visible(ns: Mapping[str, Any], shell: Any) -> Mapping[str, Any]:
    """The namespace minus IPython's own names (In, Out, exit, ...)."""
    hidden = getattr(shell, "user_ns_hidden", {}) or {}
    if not hidden:
        return ns
    return _Without(ns, hidden)


class _Without(Mapping[str, Any]):
    def __init__(self, ns: Mapping[str, Any], hidden: Mapping[str, Any]) -> None:
        self._ns, self._hidden = ns, hidden

    def _shown(self, key: str) -> bool:
        return key in self._ns and not (key in self._hidden and self._ns[key] is self._hidden[key])

    def __getitem__(self, key: str) -> Any:
        if not self._shown(key):
            raise KeyError(key)
        return self._ns[key]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._shown(key)

    def __iter__(self) -> Any:
        return (k for k in self._ns if self._shown(k))

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _dry_run_view(plan: Mapping[str, Any]) -> Any:
    from IPython.display import Markdown

    rows = "\n".join(f"| {k} | `{_cell(v)}` |" for k, v in plan.items() if k != "prompt")
    prompt = str(plan.get("prompt", ""))
    fence = "~~~~" if "```" in prompt else "```"
    return Markdown(f"**dry run** — nothing was called\n\n| setting | value |\n|---|---|\n"
                    f"{rows}\n\n{fence}text\n{prompt}\n{fence}")


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("`", "'").replace("\n", " ")[:200]
