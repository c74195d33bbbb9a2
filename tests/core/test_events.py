"""The event bus: matching, ordering, context fields, history bounds, failing subscribers."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from kite_lab.core.events import Event, EventBus, event_context


def test_exact_and_glob_patterns_receive_only_their_events() -> None:
    bus = EventBus()
    exact: list[str] = []
    glob: list[str] = []
    everything: list[str] = []
    bus.subscribe("llm:response", lambda e: exact.append(e.name))
    bus.subscribe("llm:*", lambda e: glob.append(e.name))
    bus.subscribe("*", lambda e: everything.append(e.name))
    for name in ("llm:request", "llm:response", "breaker:state", "llm:error"):
        bus.emit(name)
    assert exact == ["llm:response"]
    assert glob == ["llm:request", "llm:response", "llm:error"]
    assert everything == ["llm:request", "llm:response", "breaker:state", "llm:error"]


def test_emit_returns_the_event_with_its_fields_and_increasing_ids() -> None:
    bus = EventBus()
    first = bus.emit("llm:response", latency_s=0.25, model="m")
    second = bus.emit("llm:response", latency_s=0.5)
    assert first.name == "llm:response"
    assert first.data == {"latency_s": 0.25, "model": "m"}
    assert second.id > first.id
    assert second.time >= first.time
    assert first.to_dict() == {
        "event": "llm:response",
        "time": first.time,
        "id": first.id,
        "latency_s": 0.25,
        "model": "m",
    }


def test_events_are_immutable_and_compare_by_value() -> None:
    event = Event("a:b", {"x": 1}, time=1.0, id=7)
    with pytest.raises(AttributeError):
        event.name = "other"  # type: ignore[misc]
    assert event == Event("a:b", {"x": 1}, time=1.0, id=7)
    assert event != Event("a:b", {"x": 2}, time=1.0, id=7)


def test_unsubscribe_stops_delivery() -> None:
    bus = EventBus()
    got: list[Event] = []
    sub = bus.subscribe("x", got.append)
    bus.emit("x")
    sub.unsubscribe()
    bus.emit("x")
    assert len(got) == 1


def test_a_failing_subscriber_is_logged_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = EventBus()
    got: list[str] = []

    def broken(event: Event) -> None:
        raise RuntimeError("observer bug")

    bus.subscribe("x", broken)
    bus.subscribe("x", lambda e: got.append(e.name))
    with caplog.at_level(logging.ERROR, logger="kite_lab.events"):
        bus.emit("x")
    assert got == ["x"]
    assert "observer bug" in caplog.text


def test_subscribing_from_inside_a_callback_takes_effect_for_the_next_event() -> None:
    bus = EventBus()
    late: list[str] = []

    def first(event: Event) -> None:
        bus.subscribe("x", lambda e: late.append(e.name))

    bus.subscribe("x", first)
    bus.emit("x")
    assert late == []
    bus.emit("x")
    assert late == ["x"]


def test_history_is_bounded_and_filtered_by_pattern() -> None:
    bus = EventBus(history_size=3)
    for i in range(5):
        bus.emit("a:x" if i % 2 else "b:y", i=i)
    assert [e.data["i"] for e in bus.history()] == [2, 3, 4]
    assert [e.data["i"] for e in bus.history("a:*")] == [3]
    bus.clear_history()
    assert bus.history() == []


def test_event_context_adds_fields_to_events_inside_the_block_only() -> None:
    bus = EventBus()
    with event_context(run_id="r1", agent="a"):
        with event_context(step=2):
            inner = bus.emit("llm:request", model="m")
        middle = bus.emit("llm:request")
    outer = bus.emit("llm:request")
    assert inner.data == {"run_id": "r1", "agent": "a", "step": 2, "model": "m"}
    assert middle.data == {"run_id": "r1", "agent": "a"}
    assert outer.data == {}


async def test_event_context_follows_tasks_and_does_not_leak_between_them() -> None:
    bus = EventBus()

    async def run(name: str) -> Event:
        with event_context(run_id=name):
            await asyncio.sleep(0)
            return bus.emit("agent:step")

    a, b = await asyncio.gather(run("a"), run("b"))
    assert (a.data["run_id"], b.data["run_id"]) == ("a", "b")


async def test_async_subscribers_run_on_the_emitting_loop() -> None:
    bus = EventBus()
    done = asyncio.Event()
    seen: list[int] = []

    async def observer(event: Event) -> None:
        seen.append(event.data["n"])
        done.set()

    bus.subscribe("x", observer)
    bus.emit("x", n=3)
    await asyncio.wait_for(done.wait(), 5)
    assert seen == [3]


def test_async_subscribers_of_events_emitted_from_a_plain_thread_run_on_the_background_loop() -> (
    None
):
    bus = EventBus()
    delivered = threading.Event()
    threads: list[str] = []

    async def observer(event: Event) -> None:
        threads.append(threading.current_thread().name)
        delivered.set()

    bus.subscribe("x", observer)
    bus.emit("x")
    assert delivered.wait(5)
    assert threads == ["kite-lab-loop"]


def test_emit_is_safe_from_many_threads() -> None:
    bus = EventBus(history_size=100_000)
    count = 0
    lock = threading.Lock()

    def observer(event: Event) -> None:
        nonlocal count
        with lock:
            count += 1

    bus.subscribe("*", observer)
    threads = [
        threading.Thread(target=lambda: [bus.emit("x") for _ in range(1000)]) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert count == 8000
    assert len(bus.history()) == 8000
    assert len({e.id for e in bus.history()}) == 8000


def test_a_non_callable_subscriber_is_refused() -> None:
    with pytest.raises(TypeError, match="callable"):
        EventBus().subscribe("x", "not a function")  # type: ignore[arg-type]
