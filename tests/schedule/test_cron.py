"""Schedule expressions: 5-field cron, AWS cron(...) and rate(...); next fire; AWS spelling."""

from __future__ import annotations

import datetime as dt

import pytest

from edgekit.errors import ConfigurationError, ScheduleError
from edgekit.schedule.cron import CronExpression, RateExpression, parse_expression

T0 = dt.datetime(2026, 12, 6, 2, 40, tzinfo=dt.UTC)  # a Sunday


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("* * * * *", T0, at("2026-12-06T02:41")),
        ("*/15 * * * *", T0, at("2026-12-06T02:45")),
        ("0 6 * * 1-5", T0, at("2026-12-07T06:00")),  # Sunday -> Monday
        ("0 6 * * MON-FRI", at("2026-12-11T06:00"), at("2026-12-14T06:00")),  # Fri -> Mon
        ("30 2 1 * *", T0, at("2027-01-01T02:30")),
        ("0 0 29 2 *", T0, at("2028-02-29T00:00")),  # leap day
        ("0 12 * * 7", T0, at("2026-12-06T12:00")),  # 7 is Sunday too
        ("0 0 1 * 1", at("2026-12-01T00:00"), at("2026-12-07T00:00")),  # either day field
        ("0 0 */10 * *", T0, at("2026-12-11T00:00")),  # */n day-of-month: 1, 11, 21, 31
        ("5 4 * JAN,jul *", T0, at("2027-01-01T04:05")),
        ("cron(0 6 ? * MON-FRI *)", T0, at("2026-12-07T06:00")),
        ("cron(0 6 ? * 2-6 *)", T0, at("2026-12-07T06:00")),  # AWS: 2 = Monday
        ("cron(0/10 8-17 ? * 2-6 2027)", T0, at("2027-01-01T08:00")),  # a Friday in 2027
        ("cron(15 10 1 * ? *)", T0, at("2027-01-01T10:15")),
    ],
)
def test_next_fire(expression: str, after: dt.datetime, expected: dt.datetime) -> None:
    assert parse_expression(expression).next_after(after) == expected


def test_rate_counts_from_its_anchor() -> None:
    rate = parse_expression("rate(90 minutes)")
    assert isinstance(rate, RateExpression)
    anchor = at("2026-12-06T00:10")
    assert rate.next_after(anchor, anchor=anchor) == at("2026-12-06T01:40")
    assert rate.next_after(at("2026-12-06T01:40"), anchor=anchor) == at("2026-12-06T03:10")
    assert rate.next_after(at("2026-12-06T02:00"), anchor=anchor) == at("2026-12-06T03:10")
    assert parse_expression("rate(1 day)").to_aws() == "rate(1 day)"


@pytest.mark.parametrize(
    ("expression", "aws"),
    [
        ("*/15 * * * *", "cron(0/15 * * * ? *)"),
        ("0 6 * * 1-5", "cron(0 6 ? * 2-6 *)"),  # day of week +1, day of month '?'
        ("0 12 * * 0,7", "cron(0 12 ? * 1 *)"),
        ("0 0 1,15 * *", "cron(0 0 1,15 * ? *)"),
        ("0 9-17/2 * 1-6 *", "cron(0 9,11,13,15,17 * 1-6 ? *)"),
        ("cron(0 6 ? * MON-FRI *)", "cron(0 6 ? * 2-6 *)"),
        ("cron(0 0 1 1 ? 2027-2030)", "cron(0 0 1 1 ? 2027-2030)"),
        ("rate(5 minutes)", "rate(5 minutes)"),
    ],
)
def test_aws_spelling(expression: str, aws: str) -> None:
    parsed = parse_expression(expression)
    assert parsed.to_aws() == aws
    back = parse_expression(aws)  # the AWS spelling means the same fire times
    t = T0
    for _ in range(3):
        assert back.next_after(t, anchor=T0) == parsed.next_after(t, anchor=T0)
        t = parsed.next_after(t, anchor=T0)


@pytest.mark.parametrize(
    ("expression", "five"),
    [("cron(0 6 ? * MON-FRI *)", "0 6 * * 1-5"), ("cron(0/20 * 1 * ? *)", "0/20 * 1 * *")],
)
def test_aws_to_five_fields(expression: str, five: str) -> None:
    parsed = parse_expression(expression)
    assert isinstance(parsed, CronExpression)
    assert parsed.to_cron() == five


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("61 * * * *", r"minute field: 61 is out of range 0-59"),
        ("* 24 * * *", r"hour field: 24 is out of range 0-23"),
        ("* * 0 * *", r"day-of-month field: 0 is out of range 1-31"),
        ("* * * 13 *", r"month field: 13 is out of range 1-12"),
        ("* * * * 8", r"day-of-week field: 8 is out of range 0-7"),
        ("* * * FOO *", r"month field: 'FOO' is not a number 1-12 \(or JAN-DEC\)"),
        ("*/0 * * * *", r"minute field: step '0' is not a number > 0"),
        ("5-1 * * * *", r"minute field: range '5-1' runs backwards"),
        ("* * *", r"3 fields; this form has 5: MINUTE HOUR DAY-OF-MONTH MONTH DAY-OF-WEEK"),
        ("cron(0 6 * * *)", r"5 fields; this form has 6: .* YEAR"),
        ("cron(0 6 * * MON *)", r"exactly one of day-of-month and day-of-week is '\?'"),
        ("cron(0 6 ? * 0 *)", r"day-of-week field: 0 is out of range 1-7"),
        ("cron(0 0 L * ? *)", r"day-of-month field 'L': AWS's L, W and # are not supported"),
        ("cron(0 0 ? * 6#3 *)", r"day-of-week field '6#3': AWS's L, W and #"),
        ("0 6 ? * *", r"day-of-month field: '\?' is only for AWS cron"),
        ("0 0 30 2 *", r"never fires in the next 8 years"),
        ("rate(1 minutes)", r"AWS requires the unit 'minute' for the value 1"),
        ("rate(5 minute)", r"AWS requires the unit 'minutes' for the value 5"),
        ("rate(5 weeks)", r"rate unit 'weeks' is not minute\(s\), hour\(s\) or day\(s\)"),
        ("rate(0 minutes)", r"1 or more"),
        ("", r"empty"),
    ],
)
def test_bad_expressions_name_the_field(expression: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message) as caught:
        parse_expression(expression)
    assert isinstance(caught.value, ConfigurationError)
    assert "--cron" in str(caught.value) or "never" not in message


def test_both_day_fields_have_no_aws_spelling() -> None:
    with pytest.raises(ScheduleError, match="restricts both day-of-month and day-of-week"):
        parse_expression("0 0 1 * 1").to_aws()


def test_times_must_carry_a_zone() -> None:
    with pytest.raises(ScheduleError, match="no time zone"):
        parse_expression("* * * * *").next_after(dt.datetime(2026, 1, 1))  # noqa: DTZ001
