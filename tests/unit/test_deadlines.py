"""The requests' deadline: a request is cut once its time is up, never before, and a
cancellation that is not the deadline's is left alone."""

from __future__ import annotations

import asyncio
import time

import pytest

from app.http.deadlines import Deadlines


async def run_until_cut(deadlines: Deadlines, work_seconds: float) -> tuple[bool, float]:
    """Whether the work was cut by its deadline, and after how long."""
    task = asyncio.current_task()
    assert task is not None
    started = time.monotonic()
    deadlines.start(task)
    try:
        await asyncio.sleep(work_seconds)
        return False, time.monotonic() - started
    except asyncio.CancelledError:
        if not deadlines.was_cut(task):
            raise
        return True, time.monotonic() - started
    finally:
        deadlines.done(task)


async def test_a_request_past_its_deadline_is_cut_soon_after_and_not_before() -> None:
    deadlines = Deadlines(0.2)

    cut, after = await run_until_cut(deadlines, 5)

    assert cut
    assert 0.2 <= after < 0.2 + 0.1


async def test_a_request_within_its_deadline_runs_to_its_end() -> None:
    deadlines = Deadlines(0.3)

    assert await run_until_cut(deadlines, 0.05) == (False, pytest.approx(0.05, abs=0.05))


async def test_a_request_whose_answer_has_begun_is_not_cut() -> None:
    deadlines = Deadlines(0.1)
    task = asyncio.current_task()
    assert task is not None

    deadlines.start(task)
    deadlines.answering(task)
    await asyncio.sleep(0.3)
    deadlines.done(task)


async def test_a_cancellation_that_is_not_the_deadlines_goes_through() -> None:
    deadlines = Deadlines(5)
    running = asyncio.create_task(run_until_cut(deadlines, 5))
    await asyncio.sleep(0.01)

    running.cancel()

    with pytest.raises(asyncio.CancelledError):
        await running


async def test_many_requests_are_each_cut_on_their_own_deadline() -> None:
    deadlines = Deadlines(0.2)

    outcomes = await asyncio.gather(
        run_until_cut(deadlines, 5), run_until_cut(deadlines, 0.05), run_until_cut(deadlines, 5)
    )

    assert [cut for cut, _ in outcomes] == [True, False, True]
