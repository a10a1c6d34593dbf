"""BusyPoll: the loop polls while a wait is in flight, and stops when it should."""

from __future__ import annotations

import asyncio

from shared.busypoll import BusyPoll


async def _answer_after(seconds: float) -> None:
    """A stand-in for a database answer that lands `seconds` from now."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    loop.call_later(seconds, done.set_result, None)
    await done


async def test_the_loop_polls_while_a_wait_is_in_flight_and_stops_after_the_linger() -> None:
    poll = BusyPoll(budget=1.0, linger=0.002)
    async with poll:
        assert poll.polling()
        await _answer_after(0.005)
    assert poll.polling()  # lingering: a write that follows at once reuses the poller
    await asyncio.sleep(0.05)
    assert not poll.polling()
    # A loop asleep in epoll for the 5 ms would have turned a handful of times, not hundreds.
    assert poll.turns > 50


async def test_back_to_back_waits_reuse_one_poller() -> None:
    poll = BusyPoll(budget=1.0, linger=0.05)
    async with poll:
        await _answer_after(0.001)
        first = poll._task
    async with poll:
        await _answer_after(0.001)
        assert poll._task is first
    await poll.close()


async def test_the_poller_runs_until_the_last_of_overlapping_waits_ends() -> None:
    poll = BusyPoll(budget=1.0, linger=0.001)
    await poll.__aenter__()  # two appends in flight at once
    await poll.__aenter__()
    await poll.__aexit__(None, None, None)
    await asyncio.sleep(0.02)  # far past the linger: the second wait still holds it
    assert poll.polling()
    await poll.__aexit__(None, None, None)
    await asyncio.sleep(0.02)
    assert not poll.polling()


async def test_a_stuck_wait_stops_the_polling_after_the_budget() -> None:
    poll = BusyPoll(budget=0.005, linger=1.0)
    async with poll:
        await asyncio.sleep(0.1)  # a write stuck behind a lock
        assert not poll.polling()  # it waits asleep once the budget is spent
    assert not poll.polling()


async def test_other_tasks_run_while_the_loop_polls() -> None:
    poll = BusyPoll(budget=1.0, linger=0.001)
    ran: list[int] = []

    async def other() -> None:
        for i in range(100):
            ran.append(i)
            await asyncio.sleep(0)

    async with poll:
        await asyncio.gather(other(), _answer_after(0.002))
    assert ran == list(range(100))
    await poll.close()


async def test_close_stops_the_poller_at_once() -> None:
    poll = BusyPoll(budget=10.0, linger=10.0)
    async with poll:
        await asyncio.sleep(0)
    assert poll.polling()
    await poll.close()
    assert not poll.polling()


async def test_a_zero_budget_turns_it_off() -> None:
    poll = BusyPoll(budget=0)
    async with poll:
        assert not poll.polling()
        await _answer_after(0.002)
    assert poll.turns == 0


def test_a_poller_left_by_a_closed_loop_is_replaced_in_the_next() -> None:
    poll = BusyPoll(budget=10.0, linger=10.0)

    async def wait_briefly() -> int:
        async with poll:
            await _answer_after(0.002)
        return poll.turns

    first = asyncio.new_event_loop()
    first.run_until_complete(wait_briefly())
    first.close()  # its poller never ended: the loop closed under it
    assert poll.polling()

    async def in_a_new_loop() -> None:
        async with poll:
            await _answer_after(0.005)
        await poll.close()

    asyncio.run(in_a_new_loop())
    assert poll.turns > 50
