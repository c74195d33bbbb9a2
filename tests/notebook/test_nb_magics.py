"""%%kite and %kite in a testing shell, against the fake provider server (real openai SDK,
real HTTP): capture, formats, dry-run, streaming, interpolation, sessions, errors."""

from __future__ import annotations

import threading
import time
from typing import Any

import pandas as pd
import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output
from nb_helpers import FAKE_KEY

from kite_lab.core.errors import AgentError, OutputParseError, ServerError
from kite_lab.core.types import RunResult
from kite_lab.render import KiteText
from kite_lab.testing import Fault, Reply, ToolCallSpec


def cell(ip: Any, line: str, body: str) -> Any:
    """Run a %%kite cell, capturing its outputs."""
    with capture_output() as cap:
        ip.run_cell(f"%%kite {line}\n{body}")
    return cap


def test_load_ext_registers_magics_and_config(shell: Any) -> None:
    shell.run_line_magic("load_ext", "kite_lab")
    assert shell.find_cell_magic("kite") is not None
    assert shell.find_line_magic("kite") is not None
    assert "--dry-run" in shell.find_cell_magic("kite").__doc__
    assert shell.custom_exceptions == ()  # no global set_custom_exc
    shell.run_line_magic("config", "KiteMagics.default_format = 'text'")
    magics = shell.magics_manager.registry["KiteMagics"]
    assert magics.default_format == "text"
    shell.run_line_magic("load_ext", "kite_lab")  # twice: same magics, same Kite
    assert shell.magics_manager.registry["KiteMagics"] is magics


def test_current_and_use(ip: Any, fake_kite: Any) -> None:
    from kite_lab.notebook import current

    assert current() is fake_kite


@pytest.mark.parametrize("line", ["-o ans", "ans <<"])
def test_capture_forms(ip: Any, fake_llm: Any, line: str) -> None:
    fake_llm.enqueue("Paris")
    cell(ip, line, "Capital of France?")
    answer = ip.user_ns["ans"]
    assert isinstance(answer, KiteText) and answer == "Paris"
    assert answer.completion.usage.total_tokens > 0


def test_every_format(ip: Any, fake_llm: Any) -> None:
    fake_llm.enqueue("**bold**", "plain", "```python\nprint(1)\n```", '{"a": [1, 2]}',
                     "<b>hi</b>", '[{"city": "Paris", "pop": 2}, {"city": "Rome", "pop": 3}]')
    mimes = {}
    for fmt in ("markdown", "text", "code", "json", "html", "df"):
        cap = cell(ip, f"-f {fmt} -o v_{fmt} --no-stream", "x")
        assert len(cap.outputs) == 1
        mimes[fmt] = cap.outputs[0].data
        assert cap.outputs[0].metadata["kite_lab"]["format"] == fmt
    assert "text/markdown" in mimes["markdown"] and "text/html" in mimes["html"]
    assert "text/markdown" not in mimes["text"]
    assert ip.user_ns["v_code"] == "print(1)"
    assert ip.user_ns["v_json"] == {"a": [1, 2]}
    frame = ip.user_ns["v_df"]
    assert isinstance(frame, pd.DataFrame) and list(frame["city"]) == ["Paris", "Rome"]
    assert "<table" in mimes["df"]["text/html"]


def test_footer_and_provenance(ip: Any, fake_llm: Any) -> None:
    fake_llm.enqueue(Reply(text="ok", prompt_tokens=7, completion_tokens=3))
    cap = cell(ip, "openai/gpt-4o-mini --no-stream --temperature 0.5", "hello")
    output = cap.outputs[0]
    assert "openai/gpt-4o-mini · 10 tokens (7 in, 3 out) · \\$" in output.data["text/markdown"]
    meta = output.metadata["kite_lab"]
    assert meta["target"] == "openai/gpt-4o-mini" and meta["params"] == {"temperature": 0.5}
    assert FAKE_KEY not in repr(output.data) + repr(output.metadata)
    ip.run_line_magic("config", "KiteMagics.show_usage = False")
    fake_llm.enqueue("ok")
    cap = cell(ip, "--no-stream", "hello")
    assert "tokens" not in cap.outputs[0].data["text/markdown"]


def test_dry_run_calls_nothing(ip: Any, fake_llm: Any) -> None:
    ip.user_ns["topic"] = "kites"
    cap = cell(ip, "openai/gpt-4o --temperature 0 -o plan --dry-run", "About {topic}")
    assert fake_llm.requests == []
    shown = cap.outputs[0].data["text/markdown"]
    assert "dry run" in shown and "About kites" in shown
    plan = ip.user_ns["plan"]
    assert plan["provider"] == "openai" and plan["model"] == "gpt-4o"
    assert plan["params"] == {"temperature": 0} and plan["cached"] is True


def test_streaming_updates_the_display_incrementally(ip: Any, fake_llm: Any) -> None:
    ip.run_line_magic("config", "KiteMagics.stream_interval = 0")
    fake_llm.enqueue(Reply(text="one two three four five six", chunk_size=3))
    cap = cell(ip, "--stream -f text", "count")
    updates = [o for o in cap.outputs if o.update]
    partial = [o.data["text/plain"] for o in updates[:-1]]
    assert len(partial) >= 5
    assert all(a.rstrip(" ▍") in b for a, b in zip(partial, partial[1:], strict=False))
    assert updates[-1].data["text/plain"].startswith("one two three four five six")
    ids = {o.transient["display_id"] for o in cap.outputs}
    assert len(ids) == 1  # one display, updated in place


def test_interpolation_leaves_code_braces(ip: Any, fake_llm: Any) -> None:
    ip.user_ns.update(topic="kites", row={"title": "T"})
    cell(ip, "--no-stream", 'About {topic} ({row[title]}): d = {"a": {1}}; {{topic}} {nope}')
    assert fake_llm.requests[-1].last_user_text == 'About kites (T): d = {"a": {1}}; {topic} {nope}'
    cell(ip, "--no-stream --no-interpolate", "About {topic}")
    assert fake_llm.requests[-1].last_user_text == "About {topic}"


def test_failed_lookup_is_reported(ip: Any, fake_llm: Any) -> None:
    ip.user_ns["row"] = {"a": 1}
    cap = cell(ip, "--no-stream", "see {row[b]}")
    assert "{row[b]} left as written" in cap.stderr
    assert fake_llm.requests[-1].last_user_text == "see {row[b]}"


def test_parameters_system_and_cache(ip: Any, fake_llm: Any) -> None:
    cell(ip, "--no-stream --system 'Be brief.' --max-tokens 5 -m '{\"top_p\": 0.5}' "
             "--temperature 0", "q")
    body = fake_llm.requests[-1].json
    assert body["max_tokens"] == 5 and body["top_p"] == 0.5 and body["temperature"] == 0
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    cell(ip, "--no-stream --system 'Be brief.' --max-tokens 5 -m '{\"top_p\": 0.5}' "
             "--temperature 0 -o again", "q")
    assert len(fake_llm.requests) == 1 and ip.user_ns["again"].completion.cached
    cell(ip, "--no-stream --temperature 0 --no-cache", "q")
    cell(ip, "--no-stream --temperature 0 --no-cache", "q")
    assert len(fake_llm.requests) == 3


def test_no_hidden_state_without_a_session(ip: Any, fake_llm: Any) -> None:
    cell(ip, "--no-stream", "first")
    cell(ip, "--no-stream", "second")
    assert [m["content"] for m in fake_llm.requests[-1].messages] == ["second"]


def test_session_carries_history(ip: Any, fake_llm: Any) -> None:
    fake_llm.enqueue("A1", "A2")
    cell(ip, "--no-stream --session s1", "Q1")
    cell(ip, "--no-stream --session s1", "Q2")
    assert [m["content"] for m in fake_llm.requests[-1].messages] == ["Q1", "A1", "Q2"]
    frame = ip.run_line_magic("kite", "history s1")
    assert list(frame["content"]) == ["Q1", "A1", "Q2", "A2"]
    assert ip.run_line_magic("kite", "reset") == ["s1"]
    assert len(ip.run_line_magic("kite", "history s1")) == 0


def test_alias(ip: Any, fake_llm: Any) -> None:
    ip.run_line_magic("kite", "alias big openai/gpt-4o")
    cell(ip, "big --no-stream", "x")
    assert fake_llm.requests[-1].model == "gpt-4o"
    ip.run_line_magic("kite", "alias big")
    with pytest.raises(UsageError, match="no alias"):
        ip.run_line_magic("kite", "alias big")


def test_errors_fail_the_cell_short_and_typed(ip: Any, fake_llm: Any) -> None:
    with pytest.raises(UsageError, match="unrecognized arguments: --nope"):
        ip.run_cell("%%kite --nope\nhi")
    with pytest.raises(UsageError, match="cell is empty"):
        ip.run_cell("%%kite\n   \n")
    fake_llm.enqueue(Fault(status=500, message="upstream exploded"))
    with pytest.raises(ServerError) as info:
        ip.run_cell("%%kite --no-stream\nhi")
    lines = info.value._render_traceback_()
    assert len(lines) == 1 and "ServerError" in lines[0] and "upstream exploded" in lines[0]
    fake_llm.enqueue("Sure! here it is")
    with capture_output() as cap, pytest.raises(OutputParseError, match="Sure! here"):
        ip.run_cell("%%kite -f json --no-stream\nhi")
    assert "Sure! here it is" in cap.outputs[0].data["text/plain"]  # the raw answer is shown


def test_full_tracebacks_when_short_errors_is_off(ip: Any, fake_llm: Any) -> None:
    ip.run_line_magic("config", "KiteMagics.short_errors = False")
    fake_llm.enqueue(Fault(status=500))
    with pytest.raises(ServerError) as info:
        ip.run_cell("%%kite --no-stream\nhi")
    assert not hasattr(info.value, "_render_traceback_")


def test_interrupt_cancels_the_call(ip: Any, fake_llm: Any) -> None:
    import _thread

    fake_llm.enqueue(Reply(text="late", latency=10))
    timer = threading.Timer(0.5, _thread.interrupt_main)
    started = time.monotonic()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        ip.run_cell("%%kite --no-stream\nslow")
    assert time.monotonic() - started < 5


def test_agent_by_name_and_variable(ip: Any, fake_llm: Any, fake_kite: Any) -> None:
    ip.run_line_magic("config", "KiteMagics.stream_interval = 0")
    fake_kite.create_agent("calc", "You compute.", tools=["calculator"])
    fake_llm.enqueue(
        Reply(tool_calls=[ToolCallSpec("calculator", {"expression": "6*7"})]),
        Reply(text="42"),
    )
    cap = cell(ip, "agent:calc -o run", "What is 6*7?")
    result = ip.user_ns["run"]
    assert isinstance(result, RunResult) and result.success and result.response == "42"
    texts = "\n".join(o.data.get("text/plain", "") for o in cap.outputs)
    assert "calculator(" in texts and "agent calc" in texts
    ip.user_ns["mybot"] = fake_kite.create_agent("mybot")
    fake_llm.enqueue('{"ok": true}')
    cell(ip, "agent:mybot -f json -o parsed --no-stream", "go")
    assert ip.user_ns["parsed"] == {"ok": True}
    with pytest.raises(UsageError, match="no agent named 'ghost'"):
        ip.run_cell("%%kite agent:ghost\nhi")
    with pytest.raises(UsageError, match="do not apply"):
        ip.run_cell("%%kite agent:calc --temperature 0\nhi")


def test_failed_agent_run_fails_the_cell_but_keeps_the_result(ip: Any, fake_llm: Any,
                                                              fake_kite: Any) -> None:
    fake_kite.create_agent("flaky")
    fake_llm.enqueue(Fault(status=400, message="bad request"))
    with pytest.raises(AgentError, match="flaky"):
        ip.run_cell("%%kite agent:flaky -o r --no-stream\nhi")
    assert ip.user_ns["r"].success is False


def test_tools_from_the_notebook(ip: Any, fake_llm: Any) -> None:
    ip.run_cell("def add(a: int, b: int) -> int:\n    '''Add two numbers.'''\n    return a + b")
    fake_llm.enqueue(Reply(tool_calls=[ToolCallSpec("add", {"a": 2, "b": 3})]), Reply(text="5"))
    cell(ip, "--tools add -o r --no-stream", "2+3?")
    assert ip.user_ns["r"].tool_calls[0].result == 5
    assert fake_llm.requests[0].tools[0]["function"]["name"] == "add"


def test_line_commands(ip: Any, fake_llm: Any, fake_kite: Any) -> None:
    ip.user_ns["who"] = "Ada"
    answer = ip.run_line_magic("kite", "complete Say hi to {who}")
    assert answer == "Echo: Say hi to Ada"
    with capture_output() as cap:
        listing = ip.run_line_magic("kite", "list")
        status = ip.run_line_magic("kite", "status")
        ip.run_line_magic("kite", "help")
    assert "openai" in listing["providers"] and listing["default"] == "openai/gpt-4o-mini"
    assert status["settings"]["openai_api_key"] == "***"
    assert FAKE_KEY not in cap.stdout + repr([o.data for o in cap.outputs])
    assert "Line commands" in cap.stdout
    calls = ip.run_line_magic("kite", "calls")
    assert len(calls) == 1 and calls["provider"].iloc[0] == "openai"
    assert ip.run_line_magic("kite", "metrics")["calls"].iloc[0] == 1
    with capture_output():
        assert ip.run_line_magic("kite", "cost")["calls"].iloc[0] == 1
    with capture_output():
        assert ip.run_line_magic("kite", "breaker trip maintenance") == "open"
    from kite_lab.core.errors import CircuitBreakerError

    with pytest.raises(CircuitBreakerError):
        ip.run_cell("%%kite --no-stream\nhi")
    with capture_output():
        assert ip.run_line_magic("kite", "breaker reset") == "closed"
    assert ip.run_line_magic("kite", "breaker")["state"].iloc[0] == "closed"
    with pytest.raises(UsageError, match="did you mean"):
        ip.run_line_magic("kite", "stauts")


def test_export_without_the_exporter_is_a_clear_error(ip: Any, monkeypatch: Any) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "kite_lab.notebook.export", None)
    with pytest.raises(UsageError, match="kite_lab.notebook.export is missing"):
        ip.run_line_magic("kite", "export out.py")


def test_pyproject_section(shell: Any, tmp_path: Any) -> None:
    (tmp_path / "pyproject.toml").write_text(
        "[tool.kite_lab]\ndefault_format = 'text'\nmax_histroy = 3\n"
        "[tool.kite_lab.aliases]\nfast = 'openai/gpt-4o-mini'\n"
    )
    with pytest.warns(UserWarning, match="did you mean 'max_history'"):
        shell.run_line_magic("load_ext", "kite_lab")
    magics = shell.magics_manager.registry["KiteMagics"]
    assert magics.default_format == "text" and magics.aliases == {"fast": "openai/gpt-4o-mini"}


def test_pyproject_wrong_type_is_an_error(shell: Any, tmp_path: Any) -> None:
    from kite_lab.core.errors import ConfigError

    (tmp_path / "pyproject.toml").write_text("[tool.kite_lab]\nstream = 'yes please'\n")
    with pytest.raises(ConfigError, match="stream"):
        shell.run_line_magic("load_ext", "kite_lab")


def test_ipython_config_wins_over_pyproject(tmp_path: Any) -> None:
    from IPython.core.interactiveshell import InteractiveShell
    from nb_helpers import TestingShell
    from traitlets.config import Config

    (tmp_path / "pyproject.toml").write_text("[tool.kite_lab]\ndefault_format = 'text'\n")
    config = Config()
    config.HistoryManager.enabled = False
    config.KiteMagics.default_format = "html"
    InteractiveShell.clear_instance()
    shell = TestingShell.instance(config=config)
    try:
        shell.run_line_magic("load_ext", "kite_lab")
        assert shell.magics_manager.registry["KiteMagics"].default_format == "html"
    finally:
        from kite_lab.notebook.extension import unload_ipython_extension

        unload_ipython_extension(shell)
        TestingShell.clear_instance()


def test_line_form_sees_function_locals(ip: Any, fake_llm: Any) -> None:
    ip.run_cell('def f():\n    who = "Bob"\n    y = %kite complete hi {who}\n    return y\n'
                "result = f()")
    assert ip.user_ns["result"] == "Echo: hi Bob"


def test_code_format_offers_the_next_cell(ip: Any, fake_llm: Any) -> None:
    fake_llm.enqueue("Here:\n```python\nprint('hi')\n```")
    cell(ip, "-f code --no-stream", "write code")
    assert ip.rl_next_input == "print('hi')"
    ip.run_line_magic("config", "KiteMagics.code_next_cell = False")
    ip.rl_next_input = None
    fake_llm.enqueue("```python\nx = 2\n```")
    cell(ip, "-f code --no-stream", "write code")
    assert ip.rl_next_input is None


def test_streamed_markdown_and_default_model(ip: Any, fake_llm: Any) -> None:
    ip.run_line_magic("config", "KiteMagics.default_model = 'openai/gpt-4.1-mini'")
    cap = cell(ip, "", "hello")
    assert fake_llm.requests[-1].model == "gpt-4.1-mini" and fake_llm.requests[-1].stream
    assert "text/markdown" in cap.outputs[0].data  # the partial view is Markdown too
    assert cap.outputs[-1].metadata["kite_lab"]["model"] == "gpt-4.1-mini"


def test_help_via_question_mark(ip: Any) -> None:
    with capture_output() as cap:
        ip.run_cell("%%kite?")
    assert "--no-interpolate" in cap.stdout and "%kite calls" in cap.stdout


def test_current_without_ipython_shell(monkeypatch: Any) -> None:
    import kite_lab.notebook
    from kite_lab import Kite
    from kite_lab.notebook import current, use

    monkeypatch.setattr(kite_lab.notebook, "_default", None)
    assert isinstance(current(), Kite)
    ai = Kite(env_file=None)
    assert use(ai) is ai and current() is ai
    with pytest.raises(TypeError):
        use("not a kite")  # type: ignore[arg-type]
