"""{name} interpolation: references replaced only when the name exists; braces in code,
JSON and LaTeX left alone; {{name}} escapes; never a KeyError/IndexError."""

from __future__ import annotations

import json
import string

from hypothesis import given, settings
from hypothesis import strategies as st

from kite_lab.core.interpolate import Reference, interpolate, segments


class Doc:
    title = "Kites"


NS = {"name": "Ada", "d": {"k": 1, "key with space": 2}, "items": [10, 20], "doc": Doc(),
      "json": json}


def render(text: str) -> str:
    return interpolate(text, NS).text


def test_names_attributes_and_items() -> None:
    assert render("Hi {name}") == "Hi Ada"
    assert render("{d[k]} {d['k']} {d[\"k\"]} {items[0]} {items[-1]} {doc.title}") == (
        "1 1 1 10 20 Kites"
    )


def test_literal_braces_stay() -> None:
    for text in ['{"a": {"b": 1}}', r"\frac{x}{y}", "def f():\n    return {}",
                 "{missing}", "{ name }", "{name!r}", "{name:>10}", "{0}", "{}", "{{", "}}",
                 "f'{x}'", "{json}"]:
        assert render(text) == text, text


def test_double_braces_escape_a_reference() -> None:
    assert render("{{name}} is {name}") == "{name} is Ada"


def test_failed_lookup_is_left_and_reported() -> None:
    result = interpolate("{d[nope]} {items[5]} {doc.nope}", NS)
    assert result.text == "{d[nope]} {items[5]} {doc.nope}"
    assert [s for s, _ in result.skipped] == ["d[nope]", "items[5]", "doc.nope"]


def test_segments_and_python_expr_for_the_exporter() -> None:
    parts = segments("A {d['k']} B {{x}} {doc.title}")
    refs = [p for p in parts if isinstance(p, Reference)]
    assert [r.python_expr() for r in refs] == ["d['k']", "doc.title"]
    assert "".join(p if isinstance(p, str) else "?" for p in parts) == "A ? B {x} ?"
    assert Reference.parse("items[0]").python_expr() == "items[0]"


_alphabet = string.ascii_letters[:6] + "{}[]'\".0_ \n\\:!"


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=_alphabet, max_size=60))
def test_arbitrary_bodies_never_raise(text: str) -> None:
    ns = {"a": {"b": [1]}, "b": [1, 2], "c": "x", "d": None, "e": Doc()}
    result = interpolate(text, ns)
    assert isinstance(result.text, str)
    if "{" not in text:
        assert result.text == text


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_text_without_known_names_is_unchanged_except_escapes(text: str) -> None:
    result = interpolate(text, {})
    # only {{ref}} escapes change text when no name exists
    assert result.text == "".join(p if isinstance(p, str) else "{" + p.source + "}"
                                  for p in segments(text))
