"""Errors stay in their row: faults injected on the fake server, the real SDK's errors,
retries with backoff / Retry-After, an open breaker waited out."""

from __future__ import annotations

from typing import Any

import pytest
from batch_helpers import FAKE_KEY, llm_calls

from kite_lab.testing import Fault, Reply

pytestmark = pytest.mark.timeout(60)


def test_a_failing_row_keeps_its_error_and_the_others_go_on(ai: Any, fake_llm: Any) -> None:
    def handler(request: Any) -> Reply | Fault:
        if "boom" in request.last_user_text:
            return Fault(status=400, message="this request is wrong")
        return Reply(text="fine")

    fake_llm.set_handler(handler)
    out = ai.map(["a", "boom", "c"], "Say {text}", progress=False)
    assert out["answer"].tolist() == ["fine", None, "fine"]
    assert out["_error"][0] is None and out["_error"][2] is None
    assert out["_error"][1].startswith("BadRequestError: openai: this request is wrong")
    assert llm_calls(fake_llm) == 3  # a 400 is not retried
    assert pd_isna(out["_cost_usd"][1]) and pd_isna(out["_total_tokens"][1])


def pd_isna(value: Any) -> bool:
    import pandas as pd

    return bool(pd.isna(value))


def test_retryable_errors_are_retried_then_succeed(ai: Any, fake_llm: Any) -> None:
    fake_llm.enqueue(Fault(status=500), Fault(status=503), Reply(text="third time"))
    out = ai.map(["only"], "Say {text}", retries=2, progress=False)
    assert out["answer"].tolist() == ["third time"]
    assert out["_error"][0] is None
    assert llm_calls(fake_llm) == 3


def test_a_dropped_connection_is_retried(ai: Any, fake_llm: Any) -> None:
    fake_llm.enqueue(Fault(drop_connection=True), Reply(text="back"))
    out = ai.map(["only"], "Say {text}", retries=1, progress=False)
    assert out["answer"].tolist() == ["back"]


def test_retries_run_out(make_ai: Any, fake_llm: Any) -> None:
    ai = make_ai(circuit_breaker_threshold=10)  # 3 failures must not open the breaker here
    fake_llm.enqueue(*[Fault(status=500, message="down")] * 3)
    out = ai.map(["only"], "Say {text}", retries=2, progress=False)
    assert out["_error"][0] == "ServerError: openai: down (HTTP 500)"
    assert llm_calls(fake_llm) == 3
    fake_llm.clear_requests()
    fake_llm.enqueue(Fault(status=500))
    out = ai.map(["again"], "Say {text}", retries=0, progress=False)
    assert out["_error"][0].startswith("ServerError")
    assert llm_calls(fake_llm) == 1


def test_retry_after_is_honoured(ai: Any, fake_llm: Any) -> None:
    fake_llm.enqueue(Fault(status=429, retry_after=0.4), Reply(text="ok"))
    out = ai.map(["only"], "Say {text}", progress=False)
    assert out["answer"].tolist() == ["ok"]
    assert out["_latency_s"][0] >= 0.4


def test_quota_and_auth_errors_are_not_retried_and_the_key_is_never_shown(
        ai: Any, fake_llm: Any) -> None:
    fake_llm.enqueue(Fault(status=401, message=f"Incorrect API key provided: {FAKE_KEY}"),
                     Fault(status=429, error_type="insufficient_quota", message="no credit"))
    out = ai.map(["a", "b"], "Say {text}", concurrency=1, progress=False)
    assert out["_error"][0].startswith("AuthenticationError")
    assert FAKE_KEY not in out["_error"][0] and "***" in out["_error"][0]
    assert out["_error"][1].startswith("QuotaExceeded")
    assert llm_calls(fake_llm) == 2


def test_an_open_breaker_is_waited_out_instead_of_failing_the_rest(
        make_ai: Any, fake_llm: Any) -> None:
    ai = make_ai(circuit_breaker_threshold=2, circuit_breaker_timeout=0.3)
    fake_llm.enqueue(Fault(status=500), Fault(status=500))  # two failures open the breaker
    out = ai.map([f"r{i}" for i in range(6)], "Say {text}", concurrency=1, retries=0,
                 progress=False)
    errors = out["_error"].tolist()
    assert [e.split(":")[0] if e else None for e in errors] == [
        "ServerError", "ServerError", None, None, None, None]
    assert out["answer"].tolist()[2:] == [f"Echo: Say r{i}" for i in range(2, 6)]
    assert llm_calls(fake_llm) == 6  # rows waited for half-open; none was rejected
    states = [e.data["new"] for e in ai.event_bus.history("breaker:state")]
    assert states[:3] == ["open", "half_open", "closed"]


def test_the_kill_switch_stops_every_row(ai: Any, fake_llm: Any) -> None:
    ai.kill_switch.activate("maintenance")
    out = ai.map(["a", "b"], "Say {text}", progress=False)
    assert out["_error"].str.startswith("KillSwitchError: kill switch is active: "
                                        "maintenance").all()
    assert llm_calls(fake_llm) == 0
