"""What a ``%%kite eval DATASET ...`` cell becomes in an exported script.

The line is read by ``notebook.eval_line.parse_eval_line``, as in the cell, and the script
calls ``kite_lab.script.evaluate_cell``, as the cell runner does, so both run one eval::

    %%kite eval data -o result --targets local,agent:geo --scorers exact_match:answer
    Capital of {country}?

    result = evaluate_cell(ai, data, "Capital of {country}?", ["local", "agent:geo"],
                           ["exact_match:answer"], globals())
    print(result.summary())
"""

from __future__ import annotations

from kite_lab.notebook.eval_line import parse_eval_line
from kite_lab.notebook.export.source import call_lines, comment_lines, literal, quote
from kite_lab.notebook.export.state import CellContext, CompileState, usage

__all__ = ["eval_cell"]


def eval_cell(comp: CompileState, ctx: CellContext, line: str, body: str) -> list[str]:
    """The statements equivalent to one ``%%kite eval`` cell."""
    plan = usage(ctx, parse_eval_line, line, comp.settings.aliases)
    head = comment_lines(f"%%kite {line}".rstrip(), comp.indent)
    if not body.strip():
        raise ctx.error("%%kite eval: the cell body is the prompt template; it is empty")
    if plan.dataset.isidentifier():
        if comp.defined.get(plan.dataset) != "value":
            raise ctx.error(f"%%kite eval: no variable {plan.dataset!r} is defined before this "
                            "cell")
        dataset = plan.dataset
    else:
        dataset = quote(plan.dataset)
    pre: list[str] = []
    kite = comp.kite(pre)
    template = comp.names.temp("template")
    pre.append(f"{template} = {quote(body.strip(chr(10)))}")
    args = [kite, dataset, template, literal(list(plan.targets)), literal(list(plan.scorers))]
    if any(t.startswith("agent:") for t in plan.targets):
        args.append("globals()")  # agent:NAME may be a variable of the script
    args += [f"{k}={literal(v)}" for k, v in plan.options().items()]
    var = plan.out or comp.names.temp("result")
    comp.defined[var] = "value"
    comp.answer_cells.append(ctx.number)
    return [*head, *pre,
            *call_lines(f"{var} = {comp.helper('evaluate_cell')}", args, "", comp.indent),
            f"print({var}.summary())"]
