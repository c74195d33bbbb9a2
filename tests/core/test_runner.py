"""Running async code from sync code: results, errors, cancellation, streams, per-loop clients."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from kite_lab.core.runner import PerLoop, background_loop, gather_bounded, iterate_sync, run_sync


async def _add(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b


def test_run_sync_returns_the_result_on_the_background_loop() -> None:
    async def where() -> str:
        return threading.current_thread().name

    assert run_sync(_add(2, 3)) == 5
    assert run_sync(where()) == "kite-lab-loop"


def test_run_sync_raises_the_coroutine_s_exception() -> None:
    async def boom() -> None:
        raise ValueError("bad value")

    with pytest.raises(ValueError, match="bad value"):
        run_sync(boom())


async def test_run_sync_works_while_the_calling_thread_runs_a_loop() -> None:
    # Jupyter's case: a sync method called from a cell while the kernel's loop runs.
    assert run_sync(_add(1, 1)) == 2


def test_run_sync_from_the_background_loop_is_refused_with_advice() -> None:
    async def nested() -> None:
        run_sync(_add(1, 2))

    with pytest.raises(RuntimeError, match="use the async method"):
        run_sync(nested())


def test_interrupting_run_sync_cancels_the_coroutine() -> None:
    cancelled = threading.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    def interrupt_soon() -> None:
        time.sleep(0.3)
        import _thread

        _thread.interrupt_main()

    threading.Thread(target=interrupt_soon, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        run_sync(slow())
    assert cancelled.wait(5)


def test_iterate_sync_yields_items_as_they_come_and_propagates_errors() -> None:
    async def numbers() -> object:
        for i in range(3):
            await asyncio.sleep(0)
            yield i
        raise LookupError("end of stream went wrong")

    got = []
    with pytest.raises(LookupError, match="went wrong"):
        for item in iterate_sync(numbers()):  # type: ignore[arg-type]
            got.append(item)
    assert got == [0, 1, 2]


def test_per_loop_keeps_one_instance_per_running_loop() -> None:
    made: list[object] = []

    def factory() -> object:
        made.append(object())
        return made[-1]

    per_loop: PerLoop[object] = PerLoop(factory)

    async def get() -> object:
        return per_loop.get()

    on_background = run_sync(get())
    assert run_sync(get()) is on_background
    elsewhere = asyncio.run(get())
    assert elsewhere is not on_background
    assert len(made) == 2
    per_loop.clear()
    assert per_loop.instances() == []


async def test_gather_bounded_limits_concurrency_and_returns_exceptions() -> None:
    running = 0
    peak = 0

    async def job(i: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        if i == 3:
            raise ValueError("row 3")
        return i

    results = await gather_bounded([lambda i=i: job(i) for i in range(10)], concurrency=3)
    assert peak == 3
    assert results[:3] == [0, 1, 2]
    assert isinstance(results[3], ValueError)
    assert results[4:] == list(range(4, 10))


def test_the_background_loop_is_one_loop() -> None:
    assert background_loop() is background_loop()
    assert background_loop().is_running()
