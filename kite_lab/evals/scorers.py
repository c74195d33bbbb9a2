"""Scorers: how good is one output for one dataset row.

A scorer turns ``(output, row)`` into a number in [0, 1] (``True``/``False`` count as 1/0)
and says whether that number *passes*. The built-ins::

    exact_match("answer")           1 when the output equals row["answer"] (case, spaces ignored)
    contains("answer")              1 when row["answer"] appears in the output
    regex(r"^\\d+$")                 1 when the pattern matches the output
    json_valid(schema=None)         1 when the output is JSON (and fits ``schema``)
    similarity("answer", 0.8)       cosine of fastembed embeddings; passes at >= threshold
    llm_judge(model, rubric)        a model grades the output 0-10 against ``rubric``

Any callable ``(output, row) -> float | bool`` is a scorer too (its name is the function's).

Why ``columns``: a scorer that reads ``row["answer"]`` on a dataset without that column
must fail *before* the first model call, naming the column -- not after 1,000 paid calls.
Why an async batch method: ``similarity`` embeds every output in one batch and
``llm_judge`` calls a model through the pipeline (cached, logged, budget-visible); the
simple scorers just loop.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from kite_lab.core.errors import InvalidInput

if TYPE_CHECKING:
    from kite_lab.core.types import Completion
    from kite_lab.providers.embeddings import EmbeddingProvider

__all__ = [
    "Scorer",
    "ScorerHost",
    "as_scorer",
    "contains",
    "exact_match",
    "json_valid",
    "llm_judge",
    "parse_scorer",
    "regex",
    "similarity",
    "unique_names",
]

Row = Mapping[str, Any]


class ScorerHost(Protocol):
    """What the model-backed scorers use of the Kite they run on."""

    @property
    def embeddings(self) -> EmbeddingProvider: ...

    async def agenerate(
        self, prompt: str | None = None, *, cache: bool | None = None, **kwargs: Any
    ) -> Completion: ...


@dataclass
class Scorer:
    """One scoring rule; ``name`` is its column in ``EvalResult.df`` and in thresholds."""

    name: str
    #: dataset columns it reads (checked before any call)
    columns: tuple[str, ...] = ()
    #: a score passes when it is >= this
    threshold: float = 1.0
    score_one: Callable[[Any, Row], float | bool] | None = field(default=None, repr=False)

    def score(self, output: Any, row: Row) -> float:
        """The score of one output (errors and missing outputs score 0)."""
        if output is None or self.score_one is None:
            return 0.0
        return float(self.score_one(output, row))

    async def ascore_many(
        self, host: ScorerHost, outputs: Sequence[Any], rows: Sequence[Row]
    ) -> list[float]:
        return [self.score(o, r) for o, r in zip(outputs, rows, strict=True)]

    def passed(self, value: float) -> bool:
        return value >= self.threshold


def _text(value: Any) -> str:
    return " ".join(str(value).split()).strip()


def exact_match(column: str, *, ignore_case: bool = True) -> Scorer:
    """1 when the output equals ``row[column]`` (whitespace collapsed, case ignored)."""

    def score(output: Any, row: Row) -> bool:
        a, b = _text(output), _text(row[column])
        return a.casefold() == b.casefold() if ignore_case else a == b

    return Scorer("exact_match", (column,), 1.0, score)


def contains(column: str, *, ignore_case: bool = True) -> Scorer:
    """1 when ``row[column]`` appears in the output."""

    def score(output: Any, row: Row) -> bool:
        needle, hay = _text(row[column]), _text(output)
        return needle.casefold() in hay.casefold() if ignore_case else needle in hay

    return Scorer("contains", (column,), 1.0, score)


def regex(pattern: str, *, flags: int = 0) -> Scorer:
    """1 when ``pattern`` matches somewhere in the output (``re.search``)."""
    try:
        compiled = re.compile(pattern, flags)
    except re.error as exc:
        raise InvalidInput(f"regex scorer: {pattern!r} is not a valid pattern ({exc})") from None
    return Scorer("regex", (), 1.0, lambda output, row: compiled.search(str(output)) is not None)


def json_valid(schema: Any = None) -> Scorer:
    """1 when the output is JSON (a parsed dict/list counts) and, with ``schema``, fits it."""
    validator = None
    if schema is not None:
        from kite_lab.structured.schema import normalize_schema

        validator = normalize_schema(schema)

    def score(output: Any, row: Row) -> bool:
        text = output if isinstance(output, str) else json.dumps(_plain(output))
        if validator is None:
            try:
                json.loads(text)
            except ValueError:
                return False
            return True
        try:
            validator.parse(text)
        except Exception:
            return False
        return True

    return Scorer("json_valid", (), 1.0, score)


def _plain(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    return dump() if callable(dump) else value


@dataclass
class _Similarity(Scorer):
    async def ascore_many(
        self, host: ScorerHost, outputs: Sequence[Any], rows: Sequence[Row]
    ) -> list[float]:
        import asyncio

        import numpy as np

        (column,) = self.columns
        pairs = [(i, str(o), str(r[column])) for i, (o, r) in enumerate(zip(outputs, rows,
                                                                            strict=True))
                 if o is not None]
        scores = [0.0] * len(outputs)
        if not pairs:
            return scores
        texts = [p[1] for p in pairs] + [p[2] for p in pairs]
        # fastembed is CPU-bound: off the event loop, one batch for every text
        vectors = np.asarray(await asyncio.to_thread(host.embeddings.embed_batch, texts))
        half = len(pairs)
        a, b = vectors[:half], vectors[half:]
        norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        cosine = np.einsum("ij,ij->i", a, b) / np.where(norms == 0, 1.0, norms)
        for (i, _, _), value in zip(pairs, cosine, strict=True):
            scores[i] = float(max(0.0, min(1.0, value)))
        return scores


def similarity(column: str, threshold: float = 0.8) -> Scorer:
    """Cosine similarity of the output and ``row[column]`` (offline fastembed embeddings);
    the score is the cosine, it passes at ``>= threshold``."""
    if not 0.0 < float(threshold) <= 1.0:
        raise InvalidInput(f"similarity threshold must be in (0, 1], got {threshold!r}")
    return _Similarity("similarity", (column,), float(threshold))


JUDGE_PROMPT = """You grade an answer against a rubric.

Rubric: {rubric}

Input:
{inputs}

Answer to grade:
{output}
{expected}
Reply with only a JSON object: {{"score": <integer 0-10>, "reason": "<one sentence>"}}."""


@dataclass
class _Judge(Scorer):
    model: str | None = None
    rubric: str = ""
    expected_column: str | None = None

    async def ascore_many(
        self, host: ScorerHost, outputs: Sequence[Any], rows: Sequence[Row]
    ) -> list[float]:
        import asyncio

        async def grade(output: Any, row: Row) -> float:
            if output is None:
                return 0.0
            expected = (f"\nReference answer:\n{row[self.expected_column]}\n"
                        if self.expected_column else "")
            inputs = "\n".join(f"{k}: {v}" for k, v in row.items() if k != self.expected_column)
            prompt = JUDGE_PROMPT.format(rubric=self.rubric, inputs=inputs, output=output,
                                         expected=expected)
            # temperature 0: the judge's calls are cached and replayable like any other
            completion = await host.agenerate(prompt, model=self.model, temperature=0)
            return _judge_score(completion.text)

        return list(await asyncio.gather(*(grade(o, r) for o, r in zip(outputs, rows,
                                                                         strict=True))))


def _judge_score(text: str) -> float:
    """0-1 from the judge's ``{"score": n}`` (or the first number it wrote); 0 if none."""
    match = re.search(r"\{.*\}", text, re.S)
    if match:
        try:
            value = json.loads(match.group(0)).get("score")
            if isinstance(value, int | float):
                return max(0.0, min(1.0, float(value) / 10.0))
        except (ValueError, AttributeError):
            pass
    number = re.search(r"\b(10|\d)(?:\.\d+)?\b", text)
    return max(0.0, min(1.0, float(number.group(0)) / 10.0)) if number else 0.0


def llm_judge(model: str | None, rubric: str, *, expected: str | None = None,
              threshold: float = 0.7) -> Scorer:
    """A model grades each output 0-10 against ``rubric`` (score / 10; passes at
    ``>= threshold``). ``expected`` names a reference-answer column shown to the judge.
    Its calls go through the pipeline: cached at temperature 0, logged, replayable."""
    if not isinstance(rubric, str) or not rubric.strip():
        raise InvalidInput("llm_judge needs a rubric: what makes an answer good")
    columns = (expected,) if expected else ()
    return _Judge("llm_judge", columns, float(threshold), model=model, rubric=rubric,
                  expected_column=expected)


def as_scorer(value: Any) -> Scorer:
    """A ``Scorer`` from a scorer, a spec string (``"exact_match:answer"``) or a callable."""
    if isinstance(value, Scorer):
        return value
    if isinstance(value, str):
        return parse_scorer(value)
    if callable(value):
        name = getattr(value, "__name__", "custom")
        return Scorer(name if name != "<lambda>" else "custom", (), 1.0, value)
    raise TypeError(
        f"a scorer must be a kite_lab.evals.scorers scorer, a spec such as "
        f"'exact_match:answer', or a callable (output, row) -> float | bool; got {value!r}"
    )


#: the scorers ``parse_scorer`` knows by name
_SPECS: dict[str, Callable[..., Scorer]] = {
    "exact_match": exact_match,
    "contains": contains,
    "regex": regex,
    "json_valid": json_valid,
    "similarity": similarity,
    "llm_judge": llm_judge,
}


def parse_scorer(spec: str) -> Scorer:
    """``"exact_match:answer"``, ``"similarity:answer:0.85"``, ``"regex:^\\d+$"``,
    ``"json_valid"``, ``"llm_judge:MODEL:RUBRIC"`` -- the cell's and the CLI's form."""
    name, _, rest = spec.strip().partition(":")
    factory = _SPECS.get(name)
    if factory is None:
        raise InvalidInput(
            f"unknown scorer {name!r} in {spec!r}; scorers: {', '.join(sorted(_SPECS))}"
        )
    if name == "regex":
        if not rest:
            raise InvalidInput("regex needs a pattern: 'regex:PATTERN'")
        return regex(rest)
    if name == "json_valid":
        return json_valid()
    if name == "llm_judge":
        model, _, rubric = rest.partition(":")
        return llm_judge(model or None, rubric)
    column, _, extra = rest.partition(":")
    if not column:
        raise InvalidInput(f"{name} needs a column: '{name}:COLUMN'")
    if name == "similarity" and extra:
        try:
            return similarity(column, float(extra))
        except ValueError:
            raise InvalidInput(f"similarity threshold must be a number, got {extra!r}") from None
    return factory(column)


def unique_names(scorers: Sequence[Scorer]) -> list[str]:
    """Each scorer's column name: its kind, or ``kind:column`` when two share a kind."""
    kinds = [s.name for s in scorers]
    return [f"{s.name}:{':'.join(s.columns) or i + 1}" if kinds.count(s.name) > 1 else s.name
            for i, s in enumerate(scorers)]
