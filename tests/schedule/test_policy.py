"""The catch-up policy: one run for any number of missed fire times, never two at once."""

from __future__ import annotations

import datetime as dt

import pytest

from edgekit.schedule.cron import parse_expression
from edgekit.schedule.policy import MAX_COUNTED, decide

T0 = dt.datetime(2026, 12, 6, 0, 0, tzinfo=dt.UTC)
HOURLY = parse_expression("0 * * * *")


def minutes(n: float) -> dt.timedelta:
    return dt.timedelta(minutes=n)


@pytest.mark.parametrize(
    ("now", "run", "slot", "missed"),
    [
        (T0 + minutes(59), False, None, 0),  # nothing due yet
        (T0 + minutes(60), True, T0 + minutes(60), 0),  # exactly on time
        (T0 + minutes(61), True, T0 + minutes(60), 0),  # a little late
        (T0 + minutes(6 * 60 + 30), True, T0 + minutes(6 * 60), 5),  # slept 6 slots: one run
    ],
)
def test_due_fire_times_make_one_run(
    now: dt.datetime, run: bool, slot: dt.datetime | None, missed: int
) -> None:
    d = decide(HOURLY, checked_through=T0, anchor=T0, now=now, running=False)
    assert (d.run, d.slot, d.missed) == (run, slot, missed)
    if run:
        assert d.checked_through == now
        assert d.next_fire > now
    else:
        assert d.checked_through == T0 and d.next_fire == T0 + minutes(60)


def test_nothing_starts_while_a_run_is_going_and_the_slots_wait() -> None:
    busy = decide(HOURLY, checked_through=T0, anchor=T0, now=T0 + minutes(150), running=True)
    assert not busy.run and busy.checked_through == T0  # kept: the slots are still due
    after = decide(HOURLY, checked_through=T0, anchor=T0, now=T0 + minutes(151), running=False)
    assert after.run and after.slot == T0 + minutes(120) and after.missed == 1


def test_a_new_schedule_never_runs_for_the_past() -> None:
    created = T0 + minutes(30)
    d = decide(HOURLY, checked_through=created, anchor=created, now=created, running=False)
    assert not d.run and d.next_fire == T0 + minutes(60)


def test_a_long_downtime_is_bounded() -> None:
    every_minute = parse_expression("* * * * *")
    now = T0 + dt.timedelta(days=30)
    d = decide(every_minute, checked_through=T0, anchor=T0, now=now, running=False)
    assert d.run and d.slot == now and d.missed == MAX_COUNTED - 1


def test_rates_count_from_the_creation() -> None:
    rate = parse_expression("rate(2 hours)")
    created = T0 + minutes(10)
    d = decide(
        rate, checked_through=created, anchor=created, now=T0 + minutes(5 * 60), running=False
    )
    assert d.run and d.slot == T0 + minutes(250) and d.missed == 1  # 02:10 and 04:10
