"""Scheduled pipeline runs: `edgekit pipeline schedule | schedules | unschedule`.

- ``cron``: the schedule expressions (5-field cron, AWS ``cron(...)`` and ``rate(...)``),
  their next fire time and their conversion to the AWS spelling.
- ``policy``: the catch-up policy (one run for any number of missed fire times, never two
  runs of one schedule at once), a pure function of the clock.
- ``store``: the local schedules and their runs, in ``<local home>/schedules/``.
- ``scheduler``: the local scheduler process `edgekit local up` starts
  (``python -m edgekit.schedule``); it runs `edgekit pipeline run` as a subprocess.
- ``local``: add / list / remove local schedules (checks the parameters file against the
  notebooks as `pipeline run` does).
- ``aws`` with ``aws_definition``: the same on AWS, where a SageMaker pipeline with one
  notebook-job step runs the notebooks and an EventBridge Scheduler schedule starts it;
  plain boto3, no machine of the user's involved.

Owns: schedules. Sits with ``pipeline`` and ``workflow`` (layer 10): it may use them
(``pipeline`` for the parameters check), the local home and process records, ``clients``
and the foundation. Must not import ``edgekit.cli``. The scheduler process imports only
``cron``, ``policy``, ``store`` and the foundation (no papermill, no boto3), so importing
this package stays light: ``local`` and ``aws`` are imported by their module path.
"""

from __future__ import annotations

from edgekit.schedule.cron import (
    CronExpression,
    RateExpression,
    ScheduleExpression,
    parse_expression,
)
from edgekit.schedule.policy import Decision, decide
from edgekit.schedule.store import RunRecord, Schedule, ScheduleRow

__all__ = [
    "CronExpression",
    "Decision",
    "RateExpression",
    "RunRecord",
    "Schedule",
    "ScheduleExpression",
    "ScheduleRow",
    "decide",
    "parse_expression",
]
