"""Schedule expressions: 5-field cron, AWS ``cron(...)`` (6 fields) and ``rate(...)``.

Three spellings are accepted, all in UTC:

- ``M H DOM MON DOW``: classic (Vixie) cron. Minute 0-59, hour 0-23, day of month 1-31,
  month 1-12 or JAN-DEC, day of week 0-7 or SUN-SAT (0 and 7 are Sunday). Each field is
  ``*``, a value, a range ``a-b``, a step ``*/n`` / ``a-b/n`` / ``a/n``, or a comma list of
  those. When both day fields are restricted, a day matches if EITHER matches (cron's rule).
- ``cron(M H DOM MON DOW YEAR)``: what EventBridge Scheduler and SageMaker pipeline
  schedules take. Day of week is 1-7 with 1 = Sunday; exactly one of the two day fields
  is ``?``; YEAR is 1970-2199. AWS's ``L``, ``W`` and ``#`` are refused (the local scheduler
  cannot compute them), with a message saying so.
- ``rate(N unit)``: every N minutes, hours or days (unit singular for N = 1, plural
  otherwise, as AWS requires), counted from the schedule's creation.

`parse_expression` reads any of them; ``to_aws()`` gives the AWS spelling (5-field cron is
converted; a cron whose two day fields are both restricted has no AWS equivalent and is
refused) and ``next_after()`` the next fire time, which the local scheduler uses.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from edgekit.errors import ScheduleError

UTC = dt.UTC
#: How far ahead a fire time is searched; an expression that never fires in this window
#: (``0 0 30 2 *``: 30 February) is refused when it is parsed.
HORIZON_YEARS = 8

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    name_base: int = 0  # the number of names[0]


_CRON_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day-of-month", 1, 31),
    _Field("month", 1, 12, _MONTHS, 1),
    _Field("day-of-week", 0, 7, _DAYS, 0),
)
_AWS_FIELDS = (
    *_CRON_FIELDS[:4],
    _Field("day-of-week", 1, 7, _DAYS, 1),
    _Field("year", 1970, 2199),
)
_RATE = re.compile(r"^rate\(\s*(\d+)\s+([a-z]+)\s*\)$")
_AWS_CRON = re.compile(r"^cron\((.*)\)$")
_AWS_ONLY = re.compile(r"(^|[,/-])\d*[LW]+($|[,/-])")
_UNITS = {"minute": 60, "hour": 3600, "day": 86400}

SYNTAX_HELP = (
    "use 5-field cron 'MIN HOUR DAY-OF-MONTH MONTH DAY-OF-WEEK' (e.g. '0 6 * * 1-5'), AWS "
    "'cron(MIN HOUR DAY-OF-MONTH MONTH DAY-OF-WEEK YEAR)' (e.g. 'cron(0 6 ? * MON-FRI *)') or "
    "'rate(N minutes|hours|days)'; all in UTC"
)


def _error(text: str, origin: str, problem: str) -> ScheduleError:
    return ScheduleError(f"{origin} {text!r}: {problem}; {SYNTAX_HELP}")


def _value(token: str, field: _Field, text: str, origin: str) -> int:
    upper = token.upper()
    if field.names and upper in field.names:
        return field.names.index(upper) + field.name_base
    if not token.isdigit():
        hint = f" (or {field.names[0]}-{field.names[-1]})" if field.names else ""
        raise _error(
            text,
            origin,
            f"{field.name} field: {token!r} is not a number {field.low}-{field.high}{hint}",
        )
    number = int(token)
    if not field.low <= number <= field.high:
        raise _error(
            text,
            origin,
            f"{field.name} field: {number} is out of range {field.low}-{field.high}",
        )
    return number


def _parse_field(spec: str, field: _Field, text: str, origin: str) -> frozenset[int]:
    if "#" in spec or _AWS_ONLY.search(spec.upper()):
        raise _error(
            text,
            origin,
            f"{field.name} field {spec!r}: AWS's L, W and # are not supported here; write "
            "the days out (e.g. '1-7' with a day of week)",
        )
    values: set[int] = set()
    for part in spec.split(","):
        if not part:
            raise _error(text, origin, f"{field.name} field {spec!r} has an empty list item")
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise _error(
                    text, origin, f"{field.name} field: step {step_text!r} is not a number > 0"
                )
            step = int(step_text)
        if base == "*":
            start, end = field.low, field.high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = _value(first, field, text, origin), _value(last, field, text, origin)
            if start > end:
                raise _error(text, origin, f"{field.name} field: range {base!r} runs backwards")
        else:
            start = _value(base, field, text, origin)
            end = field.high if step_text else start
        values.update(range(start, end + 1, step))
    return frozenset(values)


def _render(values: frozenset[int], low: int, high: int) -> str:
    """A set of field values as cron text: ``*``, ``a/n``, or ranges and values."""
    ordered = sorted(values)
    if ordered == list(range(low, high + 1)):
        return "*"
    if len(ordered) >= 3:
        step = ordered[1] - ordered[0]
        if step > 1 and ordered == list(range(ordered[0], high + 1, step)):
            return f"{ordered[0]}/{step}"
    parts: list[str] = []
    run = [ordered[0]]
    for value in ordered[1:]:
        if value == run[-1] + 1:
            run.append(value)
            continue
        parts.append(_run_text(run))
        run = [value]
    parts.append(_run_text(run))
    return ",".join(parts)


def _run_text(run: list[int]) -> str:
    if len(run) == 1:
        return str(run[0])
    if len(run) == 2:
        return f"{run[0]},{run[1]}"
    return f"{run[0]}-{run[-1]}"


@dataclass(frozen=True)
class CronExpression:
    """A parsed cron expression (either spelling); ``weekdays`` use 0 = Sunday."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    years: frozenset[int] | None  # None: every year
    days_restricted: bool
    weekdays_restricted: bool

    def _day_matches(self, day: dt.date) -> bool:
        in_month = day.day in self.days
        in_week = (day.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_month or in_week  # cron's rule: either day field
        return in_month and in_week

    def next_after(self, after: dt.datetime, *, anchor: dt.datetime | None = None) -> dt.datetime:
        """The first fire time strictly after ``after`` (UTC). ``anchor`` is unused (rates)."""
        t = _utc(after).replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        limit = t.year + HORIZON_YEARS
        while t.year <= limit:
            if self.years is not None and t.year not in self.years:
                t = dt.datetime(t.year + 1, 1, 1, tzinfo=UTC)
            elif t.month not in self.months:
                t = _next_month(t)
            elif not self._day_matches(t.date()):
                t = dt.datetime(t.year, t.month, t.day, tzinfo=UTC) + dt.timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0) + dt.timedelta(hours=1)
            elif t.minute not in self.minutes:
                t += dt.timedelta(minutes=1)
            else:
                return t
        raise ScheduleError(
            f"schedule {self.text!r} does not fire within {HORIZON_YEARS} years after "
            f"{after.isoformat()}; check its day, month and year fields"
        )

    def to_aws(self) -> str:
        """``cron(M H DOM MON DOW YEAR)`` for EventBridge Scheduler / SageMaker."""
        full_days = self.days == frozenset(range(1, 32))
        full_week = self.weekdays == frozenset(range(7))
        if not full_days and not full_week:
            raise ScheduleError(
                f"schedule {self.text!r} restricts both day-of-month and day-of-week (cron "
                "runs when either matches); AWS cron cannot express that: restrict only one "
                "of them, or make two schedules"
            )
        minute = _render(self.minutes, 0, 59)
        hour = _render(self.hours, 0, 23)
        month = _render(self.months, 1, 12)
        year = "*" if self.years is None else _render(self.years, 1970, 2199)
        if not full_week:
            day, weekday = "?", _render(frozenset(d + 1 for d in self.weekdays), 1, 7)
        else:
            day, weekday = _render(self.days, 1, 31), "?"
        return f"cron({minute} {hour} {day} {month} {weekday} {year})"

    def to_cron(self) -> str:
        """The 5-field spelling (ScheduleError when a YEAR field restricts the years)."""
        if self.years is not None:
            raise ScheduleError(
                f"schedule {self.text!r} restricts the year; 5-field cron has no year field"
            )
        day = _render(self.days, 1, 31) if self.days_restricted else "*"
        weekday = _render(self.weekdays, 0, 6) if self.weekdays_restricted else "*"
        return (
            f"{_render(self.minutes, 0, 59)} {_render(self.hours, 0, 23)} {day} "
            f"{_render(self.months, 1, 12)} {weekday}"
        )


@dataclass(frozen=True)
class RateExpression:
    """``rate(N unit)``: every ``seconds``, counted from an anchor (the schedule's creation)."""

    text: str
    value: int
    unit: str  # minute, hour or day

    @property
    def seconds(self) -> int:
        return self.value * _UNITS[self.unit]

    def next_after(self, after: dt.datetime, *, anchor: dt.datetime | None = None) -> dt.datetime:
        """The first ``anchor + k * interval`` (k >= 1) strictly after ``after``."""
        after = _utc(after)
        base = _utc(anchor) if anchor is not None else after
        elapsed = (after - base).total_seconds()
        periods = max(1, int(elapsed // self.seconds) + 1)
        return base + dt.timedelta(seconds=periods * self.seconds)

    def to_aws(self) -> str:
        return f"rate({self.value} {self.unit}{'' if self.value == 1 else 's'})"


ScheduleExpression = CronExpression | RateExpression


def _utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise ScheduleError(f"time {value.isoformat()} has no time zone; use UTC times")
    return value.astimezone(UTC)


def _next_month(t: dt.datetime) -> dt.datetime:
    if t.month == 12:
        return dt.datetime(t.year + 1, 1, 1, tzinfo=UTC)
    return dt.datetime(t.year, t.month + 1, 1, tzinfo=UTC)


def _parse_rate(text: str, origin: str) -> RateExpression:
    match = _RATE.match(text)
    if match is None:
        raise _error(text, origin, "a rate is 'rate(N unit)' with a whole N and a unit")
    value, unit = int(match.group(1)), match.group(2)
    singular = unit.removesuffix("s")
    if singular not in _UNITS:
        raise _error(text, origin, f"rate unit {unit!r} is not minute(s), hour(s) or day(s)")
    if value == 0:
        raise _error(text, origin, "a rate's value must be 1 or more")
    if (value == 1) != (unit == singular):
        right = singular if value == 1 else f"{singular}s"
        raise _error(text, origin, f"AWS requires the unit {right!r} for the value {value}")
    return RateExpression(text, value, singular)


def _parse_cron(text: str, origin: str, aws: bool) -> CronExpression:
    inner = _AWS_CRON.match(text).group(1) if aws else text  # type: ignore[union-attr]
    fields = inner.split()
    layout = _AWS_FIELDS if aws else _CRON_FIELDS
    if len(fields) != len(layout):
        names = " ".join(f.name.upper() for f in layout)
        raise _error(
            text,
            origin,
            f"{len(fields)} field{'' if len(fields) == 1 else 's'}; this form has "
            f"{len(layout)}: {names}",
        )
    specs = dict(zip((f.name for f in layout), fields, strict=True))
    if aws:
        day_q, week_q = specs["day-of-month"] == "?", specs["day-of-week"] == "?"
        if day_q == week_q:
            raise _error(
                text,
                origin,
                "in AWS cron exactly one of day-of-month and day-of-week is '?' (the other "
                "gives the days)",
            )
    parsed: dict[str, frozenset[int]] = {}
    for field in layout:
        spec = specs[field.name]
        if spec == "?" and aws and field.name in ("day-of-month", "day-of-week"):
            parsed[field.name] = frozenset(range(field.low, field.high + 1))
            continue
        if spec == "?":
            raise _error(text, origin, f"{field.name} field: '?' is only for AWS cron(...)")
        parsed[field.name] = _parse_field(spec, field, text, origin)
    weekdays = parsed["day-of-week"]
    weekdays = frozenset(d - 1 for d in weekdays) if aws else frozenset(d % 7 for d in weekdays)
    years = parsed.get("year")
    expression = CronExpression(
        text=text,
        minutes=parsed["minute"],
        hours=parsed["hour"],
        days=parsed["day-of-month"],
        months=parsed["month"],
        weekdays=weekdays,
        years=None if years is None or specs["year"] == "*" else years,
        days_restricted=specs["day-of-month"] not in ("*", "?")
        and not specs["day-of-month"].startswith("*"),
        weekdays_restricted=specs["day-of-week"] not in ("*", "?")
        and not specs["day-of-week"].startswith("*"),
    )
    return expression


def parse_expression(text: str, *, origin: str = "--cron") -> ScheduleExpression:
    """Parse a 5-field cron, ``cron(...)`` or ``rate(...)``; ScheduleError naming the field.

    ``origin`` names where the text came from (a flag, a file) in the error message.
    """
    text = " ".join(str(text).split())
    if not text:
        raise _error(text, origin, "the expression is empty")
    if text.startswith("rate("):
        return _parse_rate(text, origin)
    if text.startswith("cron("):
        expression = _parse_cron(text, origin, aws=True)
    else:
        expression = _parse_cron(text, origin, aws=False)
    try:
        expression.next_after(dt.datetime.now(UTC))
    except ScheduleError as exc:
        raise _error(text, origin, f"it never fires in the next {HORIZON_YEARS} years") from exc
    return expression


__all__ = [
    "HORIZON_YEARS",
    "SYNTAX_HELP",
    "CronExpression",
    "RateExpression",
    "ScheduleExpression",
    "parse_expression",
]
