"""When a local schedule runs: the catch-up policy, as a pure function of the clock.

- A schedule remembers ``checked_through``: every fire time up to it is handled.
- At each look (``now``), the fire times in ``(checked_through, now]`` are due. If any
  are, ONE run starts, for the latest of them; the others are counted as skipped
  (``missed``), never run one by one. So after a laptop slept through six hourly slots,
  the pipeline runs once, not six times.
- While a run of the schedule is still going, nothing starts and ``checked_through``
  stays: the fire times that pass meanwhile are due when the run ends, and again make one
  run. There are never two runs of one schedule at once.
- A new schedule starts with ``checked_through`` = its creation: it never runs for a fire
  time before it existed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from edgekit.schedule.cron import ScheduleExpression

#: Due fire times counted at most (the count is only reported; a per-minute cron after a
#: month of downtime does not walk 43,200 slots).
MAX_COUNTED = 10_000


@dataclass(frozen=True)
class Decision:
    """What to do for one schedule at one look."""

    run: bool
    slot: dt.datetime | None  # the fire time the run stands for
    missed: int  # other due fire times folded into this run
    checked_through: dt.datetime  # the new value to store
    next_fire: dt.datetime  # the first fire time after checked_through


def decide(
    expression: ScheduleExpression,
    *,
    checked_through: dt.datetime,
    anchor: dt.datetime,
    now: dt.datetime,
    running: bool,
) -> Decision:
    """The catch-up policy (module docstring) for one schedule at ``now``."""
    first = expression.next_after(checked_through, anchor=anchor)
    if running or first > now:
        return Decision(False, None, 0, checked_through, first)
    latest, count = first, 1
    while count < MAX_COUNTED:
        following = expression.next_after(latest, anchor=anchor)
        if following > now:
            break
        latest, count = following, count + 1
    else:  # too many to count: jump to the last fire time before now
        latest = _last_before(expression, now, anchor)
    return Decision(True, latest, count - 1, now, expression.next_after(now, anchor=anchor))


def _last_before(
    expression: ScheduleExpression, now: dt.datetime, anchor: dt.datetime
) -> dt.datetime:
    """The latest fire time <= ``now``, searched backwards a day at a time."""
    step = dt.timedelta(days=1)
    start = now - step
    while True:
        candidate = expression.next_after(start, anchor=anchor)
        if candidate <= now:
            latest = candidate
            while True:
                following = expression.next_after(latest, anchor=anchor)
                if following > now:
                    return latest
                latest = following
        start -= step


__all__ = ["MAX_COUNTED", "Decision", "decide"]
