"""What a ``%%kite`` cell becomes in an exported script.

Why the shapes below: the cell's ``CellPlan`` comes from ``magic_args.plan_cell``, as for
the magic, and the script calls the ``kite_lab.script`` helpers the cell runner calls, in
the same order of effects (call, parse, remember the session turn), failing where the
cell fails (agents that did not succeed raise ``AgentError``).

    %%kite -o answer --temperature 0        answer = answer_text(ai.generate(
    What is {city} famous for?                  f"What is {city} famous for?", temperature=0.0))
"""

from __future__ import annotations

from collections.abc import Mapping

from kite_lab.notebook.export.source import (
    LIMIT,
    call_lines,
    comment_lines,
    literal,
    quote,
    string_pieces,
)
from kite_lab.notebook.export.state import CellContext, CompileState, usage
from kite_lab.notebook.magic_args import CellPlan, plan_cell

__all__ = ["PromptText", "keywords", "kite_cell", "room"]


class PromptText:
    """A prompt (or system text) as Python: inline when it fits, else bound to a name."""

    def __init__(self, comp: CompileState, ctx: CellContext, text: str, *, interpolate: bool,
                 pre: list[str], base: str, defined: Mapping[str, str] | None = None,
                 expr: bool = False, indent: int = 0) -> None:
        hoist: list[str] = []
        self.pieces = string_pieces(text, interpolate=interpolate,
                                    defined=comp.defined if defined is None else defined,
                                    hoist=hoist, names=comp.names, width=LIMIT - indent - 4)
        if hoist and expr:
            raise ctx.error("a {reference} here needs quotes or backslashes the script cannot "
                            "inline; assign the value to a plain variable first")
        pre.extend(hoist)
        self.comp, self.pre, self.base, self.indent = comp, pre, base, indent
        self.var: str | None = None

    def inline(self) -> str:
        return self.pieces[0] if len(self.pieces) == 1 else "(" + " ".join(self.pieces) + ")"

    def code(self, room: int = 60) -> str:
        """Inline if one short literal (at most ``room`` characters), else a bound name."""
        if self.var is None and len(self.pieces) == 1 and len(self.pieces[0]) <= room:
            return self.pieces[0]
        return self.bind()

    def bind(self) -> str:
        if self.var is None:
            self.var = self.comp.names.temp(self.base)
            one = f"{self.var} = {self.pieces[0]}"
            if len(self.pieces) == 1 and self.indent + len(one) <= LIMIT:
                self.pre.append(one)
            else:
                self.pre += [f"{self.var} = (", *(f"    {p}" for p in self.pieces), ")"]
        return self.var


def room(comp: CompileState, head: str, args: list[str], tail: str) -> int:
    """Characters left for the first argument of ``head(FIRST, args...)tail`` on one line."""
    rest = "".join(f", {a}" for a in args)
    return LIMIT - comp.indent - len(head) - 1 - len(rest) - 1 - len(tail)


def keywords(kwargs: Mapping[str, str]) -> list[str]:
    """``k=v`` arguments; keys that are not identifiers go in one ``**{...}``."""
    plain = [f"{k}={v}" for k, v in kwargs.items() if k.isidentifier()]
    odd = [f"{quote(k)}: {v}" for k, v in kwargs.items() if not k.isidentifier()]
    return plain + ([f"**{{{', '.join(odd)}}}"] if odd else [])


def _target_code(comp: CompileState, plan: CellPlan, pre: list[str]) -> str | None:
    """``"provider/model"``, or ``aliases["fast"]`` when one alias hop led there."""
    if plan.target is None:
        return None
    aliases, asked = comp.settings.aliases, plan.asked
    if asked is not None and asked in aliases and aliases[asked] == plan.target:
        return f"{comp.alias_mapping(pre)}[{quote(asked)}]"
    return quote(plan.target)


# -- %%kite cells ----------------------------------------------------------------------


def kite_cell(comp: CompileState, ctx: CellContext, line: str, body: str) -> list[str]:
    """The statements equivalent to one ``%%kite`` cell."""
    plan = usage(ctx, plan_cell, line, body, comp.settings)
    head = comment_lines(f"%%kite {line}".rstrip(), comp.indent)
    if plan.dry_run and plan.out:
        raise ctx.error("--dry-run with -o stores a plan only the notebook can build; remove "
                        "-o or --dry-run")
    if plan.session and plan.kind == "model":
        comp.sessions_used.add(plan.session)  # the magic notes it before the dry-run check
    pre: list[str] = []
    indent = comp.indent
    prompt_code = PromptText(comp, ctx, plan.prompt, pre=pre, base="prompt", indent=indent,
                             interpolate=plan.interpolate and plan.over is None)
    system_code = None
    if plan.system is not None:
        system_code = PromptText(comp, ctx, plan.system, interpolate=plan.interpolate, pre=pre,
                                 base="system", indent=indent).code(40)
    if plan.over is not None:  # --over DF: the template goes to ai.map as written
        if not plan.dry_run:
            comp.answer_cells.append(ctx.number)
        body_lines = _map_cell(comp, ctx, plan, prompt_code, system_code, pre)
        if plan.out:
            comp.defined[plan.out] = "value"
        return [*head, *pre, *body_lines]
    if plan.dry_run:
        shown = prompt_code.code(room(comp, "print", [], ""))
        return [*head, "# dry run: the notebook showed this prompt and called nothing", *pre,
                f"print({shown})"]
    comp.answer_cells.append(ctx.number)
    if plan.session and plan.kind != "model":
        comp.sessions_used.add(plan.session)
    if plan.kind == "agent":
        body_lines = _agent_cell(comp, ctx, plan, prompt_code, pre)
    elif plan.kind == "tools":
        body_lines = _tools_cell(comp, ctx, plan, prompt_code, system_code, pre)
    else:
        body_lines = _model_cell(comp, ctx, plan, prompt_code, system_code, pre)
    if plan.out:
        comp.defined[plan.out] = "value"
        if plan.out == comp.kite_name:
            comp.kite_dynamic = True
    return [*head, *pre, *body_lines]


def _value_of(comp: CompileState, fmt: str) -> tuple[str, str]:
    """(prefix, suffix) turning a Completion expression into what ``-o`` stores."""
    if fmt == "json":
        return f"{comp.helper('parse_json')}(", ".text)"
    if fmt == "df":
        return f"{comp.helper('to_dataframe')}({comp.helper('parse_json')}(", ".text))"
    if fmt == "code":
        return f"{comp.helper('answer_code')}(", ")"
    return f"{comp.helper('answer_text')}(", ")"


def _model_cell(comp: CompileState, ctx: CellContext, plan: CellPlan, prompt: PromptText,
                system: str | None, pre: list[str]) -> list[str]:
    kite = comp.kite(pre)
    kwargs: dict[str, str] = {}
    model = _target_code(comp, plan, pre)
    if model is not None:
        kwargs["model"] = model
    if system is not None:
        kwargs["system"] = system
    for key, value in plan.params.items():
        kwargs[key] = literal(value)
    if plan.cache is False:
        kwargs["cache"] = "False"
    kwargs.update(_structured_args(comp, ctx, plan, pre))
    args = keywords(kwargs)
    var = plan.out or comp.names.temp("answer")
    if plan.schema:  # --schema: the validated instance (a DataFrame with -f df)
        prefix, suffix = f"{comp.helper('parsed_value')}({quote(plan.format)}, ", ")"
    else:
        prefix, suffix = _value_of(comp, plan.format)
    lines: list[str] = []
    if plan.session:
        prompt_var = prompt.bind()
        completion = comp.names.temp("completion")
        messages = (f"messages={comp.helper('session_messages')}({kite}, {quote(plan.session)}, "
                    f"{prompt_var}, {plan.max_history})")
        lines += call_lines(f"{completion} = {kite}.generate", [messages, *args], "",
                            comp.indent)
        lines.append(f"{var} = {prefix}{completion}{suffix}")
        turn = [kite, quote(plan.session), prompt_var, f"{completion}.text"]
        if "images" in kwargs:
            turn.append(kwargs["images"])
        lines += call_lines(f"{comp.helper('remember_turn')}", turn, "", comp.indent)
    else:
        head = f"{var} = {prefix}{kite}.generate"
        first = prompt.code(room(comp, head, args, suffix))
        lines += call_lines(head, [first, *args], suffix, comp.indent)
    return lines + _finish(comp, ctx, plan.format, var, var)


def _structured_args(comp: CompileState, ctx: CellContext, plan: CellPlan, pre: list[str]
                     ) -> dict[str, str]:
    """``schema=`` / ``images=`` code for ``--schema`` / ``--image``, by the cell's rules:
    the schema is a variable of the script; an image is a variable if one is defined by
    then, else a file path."""
    out: dict[str, str] = {}
    if plan.schema:
        head = plan.schema.removeprefix("list[").split(".")[0].rstrip("]")
        if comp.defined.get(head) != "value":
            raise ctx.error(f"--schema {plan.schema}: no variable {head!r} is defined before "
                            "this cell; define the model in an earlier cell")
        out["schema"] = plan.schema
    if plan.images:
        items = [i if i.isidentifier() and comp.defined.get(i) == "value" else quote(i)
                 for i in plan.images]
        listed = f"[{', '.join(items)}]"
        if len(listed) > 50:
            name = comp.names.temp("images")
            pre += [f"{name} = [", *(f"    {i}," for i in items), "]"]
            listed = name
        out["images"] = listed
    return out


def _map_cell(comp: CompileState, ctx: CellContext, plan: CellPlan, template: PromptText,
              system: str | None, pre: list[str]) -> list[str]:
    """``VAR = ai.map(DF, "template", ...)``: the call the cell runner makes."""
    assert plan.over is not None
    data = plan.over.data
    if comp.defined.get(data) != "value":
        raise ctx.error(f"--over {data}: no variable {data!r} is defined before this cell")
    kite = comp.kite(pre)
    kwargs: dict[str, str] = {}
    model = _target_code(comp, plan, pre)
    if model is not None:
        kwargs["model"] = model
    if system is not None:
        kwargs["system"] = system
    kwargs.update(_structured_args(comp, ctx, plan, pre))
    options = {**plan.params, "budget_usd": plan.over.budget,
               "concurrency": plan.over.concurrency, "checkpoint": plan.over.checkpoint}
    kwargs.update({k: literal(v) for k, v in options.items() if v is not None})
    if plan.cache is False:
        kwargs["cache"] = "False"
    if plan.dry_run:
        kwargs["dry_run"] = "True"
        first = template.code(room(comp, f"print({kite}.map", [data, *keywords(kwargs)], ")"))
        return call_lines(f"print({kite}.map", [data, first, *keywords(kwargs)], ")",
                          comp.indent)
    var = plan.out or comp.names.temp("mapped")
    head = f"{var} = {kite}.map"
    args = keywords(kwargs)
    first = template.code(room(comp, head, [data, *args], ""))
    return [*call_lines(head, [data, first, *args], "", comp.indent),
            *_finish(comp, ctx, "df", var, var)]


def _finish(comp: CompileState, ctx: CellContext, fmt: str, var: str, shown: str) -> list[str]:
    lines = []
    if comp.record:
        lines.append(f"{comp.helper('record_answer')}({ctx.number}, {quote(fmt)}, {var})")
    lines.append(f"print({shown})")
    return lines


def _run_agent(comp: CompileState, ctx: CellContext, plan: CellPlan, agent: str,
               prompt: PromptText) -> list[str]:
    """``VAR = agent.run_sync(prompt)``, ``check_run(VAR)``, then the value and the display."""
    args = [f"session_id={quote(plan.session)}"] if plan.session else []
    fmt = plan.format
    parsed = fmt in ("json", "df", "code")
    result = comp.names.temp("result") if (parsed or not plan.out) else plan.out
    head = f"{result} = {agent}.run_sync"
    lines = call_lines(head, [prompt.code(room(comp, head, args, "")), *args], "",
                       comp.indent)
    lines.append(f"{comp.helper('check_run')}({result})")
    if not parsed:
        return lines + _finish(comp, ctx, fmt, result, f"{result}.response")
    var = plan.out or comp.names.temp("answer")
    if fmt == "code":
        value = f"{comp.helper('answer_code')}({result}.response)"
    else:
        prefix, suffix = _value_of(comp, fmt)
        value = f"{prefix}{result}{suffix.replace('.text', '.response')}"
    lines.append(f"{var} = {value}")
    return lines + _finish(comp, ctx, fmt, var, var)


def _agent_cell(comp: CompileState, ctx: CellContext, plan: CellPlan, prompt: PromptText,
                pre: list[str]) -> list[str]:
    """``script.find_agent``'s rule, inline: a notebook variable wins when it is an Agent."""
    name = plan.agent or ""
    kite = comp.kite(pre)
    by_name = f"{kite}.agents[{quote(name)}]"
    if comp.defined.get(name) == "value":
        agent_cls = comp.helper("Agent")
        chosen = comp.names.temp("agent")
        pre.append(f"{chosen} = {name} if isinstance({name}, {agent_cls}) else {by_name}")
        by_name = chosen
    return _run_agent(comp, ctx, plan, by_name, prompt)


def _tools_cell(comp: CompileState, ctx: CellContext, plan: CellPlan, prompt: PromptText,
                system: str | None, pre: list[str]) -> list[str]:
    kite = comp.kite(pre)
    resolve = comp.helper("resolve_tool")
    tools = [f"{resolve}({kite}, {quote(t)}, {t})" if comp.defined.get(t) == "value"
             else f"{resolve}({kite}, {quote(t)})" for t in plan.tools]
    listed = f"[{', '.join(tools)}]"
    if len(listed) > 50:  # one tool per line, bound to a name
        name = comp.names.temp("cell_tools")
        pre += [f"{name} = [", *(f"    {t}," for t in tools), "]"]
        listed = name
    args = [kite, listed]
    if system is not None:
        args.append(f"system={system}")
    model = _target_code(comp, plan, pre)
    if model is not None:
        args.append(f"model={model}")
    args.append(f"history_messages={plan.max_history}")
    agent = comp.names.temp("cell_agent")
    pre += call_lines(f"{agent} = {comp.helper('tools_agent')}", args, "", comp.indent)
    return _run_agent(comp, ctx, plan, agent, prompt)
