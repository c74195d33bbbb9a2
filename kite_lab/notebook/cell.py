"""One ``%%kite`` cell: its plan executed, shown in the cell, the value captured.

What a cell does is decided by ``magic_args.plan_cell`` (a ``CellPlan``); what it computes
comes from ``kite_lab.script``, the helpers exported scripts call, so a cell and its
exported script store the same value. This module adds what only a kernel has: the
notebook's namespace for ``{name}``, streaming into the display, the dry-run table.

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
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.display import display

from kite_lab import script
from kite_lab.core.errors import AgentError, InvalidInput, KiteError, OutputParseError
from kite_lab.core.interpolate import interpolate, visible
from kite_lab.core.runner import iterate_sync, run_sync
from kite_lab.core.types import Completion, Message, RunResult
from kite_lab.notebook.eval_line import is_eval_line, parse_eval_line
from kite_lab.notebook.magic_args import CellPlan, plan_cell
from kite_lab.notebook.settings import MagicsHost
from kite_lab.render import CellOutput, StreamView, footer_text, provenance

if TYPE_CHECKING:
    from kite_lab.kite import Kite

__all__ = ["CellRunner", "describe_event"]


class CellRunner:
    """Runs ``%%kite`` cells for one KiteMagics (its settings, its Kite, its shell)."""

    def __init__(self, host: MagicsHost) -> None:
        self.host = host

    @property
    def ai(self) -> Kite:
        return self.host.ai

    # -- entry point -----------------------------------------------------------------
    def run(self, line: str, body: str, namespace: Mapping[str, Any]) -> Any:
        if is_eval_line(line):
            return self._run_eval(line, body, namespace)
        plan = plan_cell(line, body, self.host.magic_settings)
        value, failure = self._dispatch(plan, namespace)
        if plan.out is not None:
            self.host.shell.user_ns[plan.out] = value
        if failure is not None:
            raise failure
        return None

    def _dispatch(self, plan: CellPlan, namespace: Mapping[str, Any]
                  ) -> tuple[Any, BaseException | None]:
        if plan.over is not None:  # the body is a template over rows: no {name} from here
            return self._run_map(plan, namespace), None
        prompt, system = self._render(plan, namespace)
        if plan.kind == "agent":
            return self._run_agent(plan, prompt, namespace)
        if plan.kind == "tools":
            return self._run_with_tools(plan, prompt, system, namespace)
        return self._run_model(plan, prompt, system), None

    def _render(self, plan: CellPlan, ns: Mapping[str, Any]) -> tuple[str, str | None]:
        """The prompt and system text with ``{name}`` filled in from the notebook."""
        prompt, system = plan.prompt, plan.system
        if plan.interpolate:
            shown = visible(ns, getattr(self.host.shell, "user_ns_hidden", None))
            prompt = self._interpolate(prompt, shown)
            if system is not None:
                system = self._interpolate(system, shown)
        if not prompt.strip():
            raise UsageError("the %%kite cell is empty; write the prompt below the %%kite line")
        return prompt, system

    @staticmethod
    def _interpolate(text: str, ns: Mapping[str, Any]) -> str:
        result = interpolate(text, ns)
        for source, reason in result.skipped:
            print(f"kite: {{{source}}} left as written ({reason})", file=sys.stderr)
        return result.text

    # -- --over DF: ai.map ---------------------------------------------------------------
    def _run_map(self, plan: CellPlan, ns: Mapping[str, Any]) -> Any:
        """``ai.map(DF, body, ...)``: the exporter writes the same call (kite_cells)."""
        assert plan.over is not None
        if plan.over.data not in ns:
            raise UsageError(f"%%kite: --over {plan.over.data}: no such variable in the notebook")
        system = plan.system
        if system is not None and plan.interpolate:
            system = self._interpolate(system, visible(ns, getattr(self.host.shell,
                                                                    "user_ns_hidden", None)))
        kwargs: dict[str, Any] = {"model": plan.target, "system": system, **plan.params}
        kwargs.update(_structured_kwargs(plan, ns))
        options = {"budget_usd": plan.over.budget, "concurrency": plan.over.concurrency,
                   "checkpoint": plan.over.checkpoint, "cache": plan.cache}
        kwargs.update({k: v for k, v in options.items() if v is not None})
        try:
            value = self.ai.map(ns[plan.over.data], plan.prompt, dry_run=plan.dry_run, **kwargs)
        except (InvalidInput, TypeError) as exc:  # bad rows/columns: a short cell error
            raise UsageError(f"%%kite --over {plan.over.data}: {exc}") from None
        display(value if not plan.dry_run else _dry_run_view(value.to_dict()))
        return value

    # -- eval DATASET: ai.evaluate ---------------------------------------------------------
    def _run_eval(self, line: str, body: str, ns: Mapping[str, Any]) -> None:
        """``ai.evaluate`` over DATASET; the exporter writes the same ``evaluate_cell`` call."""
        plan = parse_eval_line(line, self.host.magic_settings.aliases)
        if not body.strip():
            raise UsageError("%%kite eval: the cell body is the prompt template; write it "
                             "below the line, e.g. 'Capital of {country}? One word.'")
        if plan.dataset.isidentifier() and plan.dataset not in ns:
            raise UsageError(f"%%kite eval: no variable {plan.dataset!r} in the notebook (a "
                             "DataFrame or list of dicts), and it is not a .csv/.jsonl path")
        dataset = ns[plan.dataset] if plan.dataset.isidentifier() else plan.dataset
        try:
            result = script.evaluate_cell(self.ai, dataset, body.strip("\n"), plan.targets,
                                          plan.scorers, ns, **plan.options())
        except (InvalidInput, TypeError) as exc:  # bad columns, scorers, targets: short error
            raise UsageError(f"%%kite eval: {exc}") from None
        if plan.out is not None:
            self.host.shell.user_ns[plan.out] = result
        display(result)

    # -- plain model calls -------------------------------------------------------------
    def _run_model(self, plan: CellPlan, prompt: str, system: str | None) -> Any:
        if plan.session:
            self.host.sessions_used.add(plan.session)
            messages = script.session_messages(self.ai, plan.session, prompt, plan.max_history)
        else:
            messages = [Message("user", prompt)]
        kwargs: dict[str, Any] = {"messages": messages, "model": plan.target,
                                  "system": system, **plan.params}
        kwargs.update(_structured_kwargs(plan, self.host.shell.user_ns))
        if plan.dry_run:
            return self._dry_run_model(plan, prompt, system, kwargs)
        handle = None
        if plan.stream:
            completion, handle = self._stream(plan.format, kwargs, plan.cache)
        else:
            completion = run_sync(self.ai.agenerate(cache=plan.cache, **kwargs))
        meta = provenance(
            target=plan.requested, provider=completion.provider, model=completion.model,
            params=plan.params, prompt=prompt, fmt=plan.format, system=system, session=plan.session,
            cached=completion.cached,
        )
        value = self._show(completion.text, plan.format, meta, handle, footer_text(completion),
                           lambda: _answer(plan, completion))
        if plan.session:
            script.remember_turn(self.ai, plan.session, prompt, completion.text,
                                 kwargs.get("images", ()))
        if plan.format == "code" and self.host.magic_settings.code_next_cell:
            self.host.shell.set_next_input(str(value), replace=False)
        return value

    def _stream(self, fmt: str, kwargs: dict[str, Any], cache: bool | None
                ) -> tuple[Completion, Any]:
        handle = display(StreamView("", fmt), display_id=True)
        interval = self.host.magic_settings.stream_interval
        text, last, completion = "", 0.0, None
        try:
            for chunk in iterate_sync(self.ai.astream_chunks(cache=cache, **kwargs)):
                if chunk.completion is not None:
                    completion = chunk.completion
                if chunk.text:
                    text += chunk.text
                    now = time.monotonic()
                    if now - last >= interval:
                        handle.update(StreamView(text, fmt))
                        last = now
        except KeyboardInterrupt:
            handle.update(StreamView(text + "\n\n[interrupted]", "text"))
            raise
        if completion is None:
            raise KiteError("the stream ended without a final answer; run the cell again")
        return completion, handle

    def _dry_run_model(self, plan: CellPlan, prompt: str, system: str | None,
                       kwargs: dict[str, Any]) -> dict[str, Any]:
        from kite_lab.pipeline import should_cache

        shown: dict[str, Any] = {"target": plan.target, "format": plan.format,
                                 "stream": plan.stream, "session": plan.session,
                                 "history_messages": len(kwargs["messages"]) - 1}
        try:
            provider, request = self.ai.build_request(**kwargs)
        except KiteError as exc:
            shown["error"] = f"{type(exc).__name__}: {exc}"
        else:
            shown.update(provider=provider.name, model=request.model, params=request.params,
                         cached=bool(self.ai.response_cache()) and should_cache(request,
                                                                                plan.cache))
        shown.update(system=system, prompt=prompt)
        display(_dry_run_view(shown))
        return shown

    def _show(self, text: str, fmt: str, meta: dict[str, Any], handle: Any,
              footer: str | None, value_of: Callable[[], Any]) -> Any:
        """Show the answer as ``fmt`` and return ``value_of()``; raw text if that fails."""
        footer = footer if self.host.magic_settings.show_usage else None
        try:
            value = value_of()
        except OutputParseError:
            shown = CellOutput(text, "text", None, footer, meta)
            handle.update(shown) if handle is not None else display(shown)
            raise
        output = CellOutput(text, fmt, value, footer, meta)
        handle.update(output) if handle is not None else display(output)
        return value

    # -- agents ------------------------------------------------------------------------
    def _run_agent(self, plan: CellPlan, prompt: str, ns: Mapping[str, Any]
                   ) -> tuple[Any, BaseException | None]:
        from kite_lab.agents.lookup import resolve_agent

        try:
            agent = resolve_agent(self.ai, plan.agent or "", ns)
        except InvalidInput as exc:
            raise UsageError(f"%%kite: {exc}") from None
        return self._run_agent_object(agent, plan, prompt, plan.target)

    def _run_with_tools(self, plan: CellPlan, prompt: str, system: str | None,
                        ns: Mapping[str, Any]) -> tuple[Any, BaseException | None]:
        tools = [script.resolve_tool(self.ai, name, ns.get(name))
                 for name in plan.tools]
        agent = script.tools_agent(self.ai, tools, system=system, model=plan.target,
                                   history_messages=plan.max_history)
        return self._run_agent_object(agent, plan, prompt, plan.target)

    def _run_agent_object(self, agent: Any, plan: CellPlan, prompt: str,
                          target: str | None) -> tuple[Any, BaseException | None]:
        if plan.dry_run:
            shown = {"target": target, "agent": agent.name, "model": getattr(agent, "model", None),
                     "tools": [t.name for t in getattr(agent, "tools", [])],
                     "session": plan.session, "format": plan.format, "prompt": prompt}
            display(_dry_run_view(shown))
            return shown, None
        if plan.session:
            self.host.sessions_used.add(plan.session)
        coro = agent.run(prompt, session_id=plan.session)
        if plan.stream:
            result, handle = self._watch_agent(agent, coro)
        else:
            result, handle = run_sync(coro), None
        meta = provenance(target=target, provider=None, model=getattr(agent, "model", None),
                          params={}, prompt=prompt, fmt=plan.format, session=plan.session,
                          agent=agent.name)
        footer = footer_text(result)
        try:
            script.check_run(result)
        except AgentError as failure:
            self._show(result.response or "(no answer)", "text", meta, handle, footer,
                       lambda: None)
            return result, failure
        if plan.format in ("json", "df", "code"):
            return self._show(result.response, plan.format, meta, handle, footer,
                              lambda: script.answer_value(plan.format, result.response)), None
        self._show(result.response, plan.format, meta, handle, footer, lambda: None)
        return result, None

    def _watch_agent(self, agent: Any, coro: Any) -> tuple[RunResult, Any]:
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


def _structured_kwargs(plan: CellPlan, ns: Mapping[str, Any]) -> dict[str, Any]:
    """``schema=`` / ``images=`` for ``--schema NAME`` / ``--image VAR_OR_PATH``: names
    from the notebook; an image that is not a variable is a file path."""
    kwargs: dict[str, Any] = {}
    if plan.schema:
        listed = plan.schema.startswith("list[")
        name = plan.schema[5:-1] if listed else plan.schema
        head, *attrs = name.split(".")
        if head not in ns:
            raise UsageError(f"%%kite: --schema {plan.schema}: no variable {head!r} in the "
                             "notebook; define the model (class Person(BaseModel): ...) first")
        value = ns[head]
        for attr in attrs:
            value = getattr(value, attr)
        kwargs["schema"] = list[value] if listed else value  # type: ignore[valid-type]
    if plan.images:
        kwargs["images"] = [ns[i] if i.isidentifier() and i in ns else i for i in plan.images]
    return kwargs


def _answer(plan: CellPlan, completion: Completion) -> Any:
    """What -o stores: the validated instance (a DataFrame with -f df) for --schema."""
    if plan.schema:
        from kite_lab.structured.values import parsed_value

        return parsed_value(plan.format, completion)
    return script.answer_value(plan.format, completion)


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


def _dry_run_view(plan: Mapping[str, Any]) -> Any:
    from IPython.display import Markdown

    rows = "\n".join(f"| {k} | `{_cell(v)}` |" for k, v in plan.items() if k != "prompt")
    prompt = str(plan.get("prompt", ""))
    fence = "~~~~" if "```" in prompt else "```"
    return Markdown(f"**dry run** — nothing was called\n\n| setting | value |\n|---|---|\n"
                    f"{rows}\n\n{fence}text\n{prompt}\n{fence}")


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("`", "'").replace("\n", " ")[:200]
