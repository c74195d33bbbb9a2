"""What an eval compares: model ids, ``Prompt`` variants and agents, each with a label.

``Prompt(template, model=..., system=..., **params)`` is one prompt variant: its template
is rendered per row like an ``ai.map`` template. A bare model id uses the eval's default
template (``prompt=``, else ``{input}`` when the dataset has an ``input`` column, else its
only input column). An agent gets the row as its input.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kite_lab.core.errors import InvalidInput

if TYPE_CHECKING:
    from kite_lab.agents.base import Agent

__all__ = ["Prompt", "Target", "default_template", "resolve_targets"]


class Prompt:
    """One prompt variant: ``Prompt("Answer briefly: {question}", model="local/...")``."""

    def __init__(self, template: str, *, model: str | None = None, system: str | None = None,
                 name: str | None = None, **params: Any) -> None:
        if not isinstance(template, str) or not template.strip():
            raise InvalidInput("Prompt needs a template, e.g. Prompt('Answer: {question}')")
        self.template = template
        self.model = model
        self.system = system
        self.name = name
        self.params = params

    def label(self) -> str:
        if self.name:
            return self.name
        head = " ".join(self.template.split())
        head = head if len(head) <= 32 else head[:31] + "…"
        return f"{self.model or 'default'}: {head}"

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self.params.items())
        return (f"Prompt({self.template!r}, model={self.model!r}, system={self.system!r}"
                f"{extra})")


@dataclass
class Target:
    """A resolved target: what ``ai.map`` is called with for it."""

    label: str
    prompt: str | Agent
    model: str | None = None
    system: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def is_agent(self) -> bool:
        return not isinstance(self.prompt, str)


def default_template(columns: Sequence[str], prompt: str | None) -> str | None:
    """The template bare model ids use, or None when the dataset does not say which."""
    if prompt is not None:
        return prompt
    if "input" in columns:
        return "{input}"
    if len(columns) == 1:
        return "{" + columns[0] + "}"
    return None


def resolve_targets(targets: Any, template: str | None, columns: Sequence[str]) -> list[Target]:
    """``Target``s with unique labels; bad kinds get a TypeError naming the accepted ones."""
    from kite_lab.agents.base import Agent

    items: Iterable[Any] = [targets] if isinstance(targets, str | Prompt | Agent) else targets
    resolved: list[Target] = []
    for item in items:
        if isinstance(item, str):
            if template is None:
                raise InvalidInput(
                    f"target {item!r} is a model id, but the eval has no prompt for it: pass "
                    f"prompt='...{{column}}...', use Prompt(template, model={item!r}), or give "
                    f"the dataset an 'input' column; input columns: {', '.join(columns)}"
                )
            resolved.append(Target(item, template, model=item))
        elif isinstance(item, Prompt):
            resolved.append(Target(item.label(), item.template, item.model, item.system,
                                   dict(item.params)))
        elif isinstance(item, Agent):
            resolved.append(Target(item.name, item, item.model))
        else:
            raise TypeError(
                "targets are model ids ('openai/gpt-4o-mini'), Prompt(template, model=...) "
                f"variants or agents; got {type(item).__name__}"
            )
    if not resolved:
        raise InvalidInput("evaluate needs at least one target")
    seen: dict[str, int] = {}
    for target in resolved:  # two variants with the same label stay apart
        count = seen.get(target.label, 0) + 1
        seen[target.label] = count
        if count > 1:
            target.label = f"{target.label} #{count}"
    return resolved
