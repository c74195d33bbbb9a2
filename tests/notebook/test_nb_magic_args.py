"""%%kite line parsing: every option, capture forms, and UsageError for anything invalid."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError

from kite_lab.notebook.magic_args import (
    KiteCellOptions,
    cell_help,
    parse_kite_line,
    parse_line_command,
)
from kite_lab.notebook.settings import FORMATS


def test_empty_line_gives_defaults() -> None:
    assert parse_kite_line("") == KiteCellOptions()


def test_every_option() -> None:
    opts = parse_kite_line(
        "openai/gpt-4o-mini -f json -o ans --no-stream --session s1 --system 'Be brief.' "
        "--temperature 0.2 --max-tokens 50 -m '{\"top_p\": 0.9}' --tools add,mul "
        "--no-cache --no-interpolate --dry-run"
    )
    assert opts.target == "openai/gpt-4o-mini"
    assert opts.format == "json" and opts.out == "ans" and opts.stream is False
    assert opts.session == "s1" and opts.system == "Be brief."
    assert opts.model_params() == {"top_p": 0.9, "temperature": 0.2, "max_tokens": 50}
    assert opts.tools == ("add", "mul")
    assert opts.cache is False and not opts.interpolate and opts.dry_run


@pytest.mark.parametrize("line", ["ans << openai/x", "ans<<", "  ans <<  -f text"])
def test_capture_prefix(line: str) -> None:
    assert parse_kite_line(line).out == "ans"


def test_agent_target() -> None:
    assert parse_kite_line("agent:helper").agent_name == "helper"
    assert parse_kite_line("openai/gpt-4o").agent_name is None


@pytest.mark.parametrize(
    "line, words",
    [
        ("--bogus", "unrecognized"),
        ("-f xml", "invalid choice"),
        ("--temperature hot", "invalid float"),
        ("--temperature 3", "between 0 and 2"),
        ("--max-tokens 0", "positive"),
        ("-m '[1]'", "JSON object"),
        ("-m '{bad'", "JSON object"),
        ("'unclosed", "quotes"),
        ("--temp 0.1", "unrecognized"),  # no abbreviations
        ("-o 1x", "variable name"),
        ("-o class", "variable name"),
        ("x << -o y", "two capture"),
        ("--temperature 0 -m '{\"temperature\": 1}'", "twice"),
        ("--tools 'a b'", "--tools"),
        ("agent:", "agent name"),
        ("a b", "unrecognized"),
        ("-h", "unrecognized"),
    ],
)
def test_bad_lines_are_usage_errors(line: str, words: str) -> None:
    with pytest.raises(UsageError, match=words):
        parse_kite_line(line)


def test_help_lists_options_and_commands() -> None:
    text = cell_help()
    for needle in ("--format", "--dry-run", "--no-interpolate", "%kite alias", "%kite calls"):
        assert needle in text
    for fmt in FORMATS:
        assert fmt in text


def test_line_commands() -> None:
    assert parse_line_command("").name == "help"
    cmd = parse_line_command("complete Say {x} \"hi\"")
    assert cmd.name == "complete" and cmd.rest == 'Say {x} "hi"'
    assert parse_line_command("alias fast groq/llama").args == ("fast", "groq/llama")
    with pytest.raises(UsageError, match="did you mean 'status'"):
        parse_line_command("stauts")
    with pytest.raises(UsageError, match="needs a prompt"):
        parse_line_command("complete")


_tokens = st.sampled_from(
    ["-f", "json", "df", "--format", "-o", "x", "--stream", "--no-stream", "--session", "s",
     "--system", "'hi there'", "--temperature", "0.5", "-1", "--max-tokens", "10", "-m",
     "'{\"a\": 1}'", "{", "}", "--tools", "a,b", "--no-cache", "--dry-run", "agent:bot",
     "openai/gpt-4o", "<<", "v", "\"", "'", "--", "-", "=", "$x", "{x}"]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_tokens, max_size=8).map(" ".join) | st.text(max_size=40))
def test_arbitrary_lines_work_or_raise_usage_error(line: str) -> None:
    try:
        opts = parse_kite_line(line)
    except UsageError:
        return
    assert isinstance(opts, KiteCellOptions)
    assert opts.format in (None, *FORMATS)
