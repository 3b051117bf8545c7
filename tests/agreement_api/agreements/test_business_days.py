from __future__ import annotations

from datetime import date

import pytest

from agreement_api.agreements.business_days import is_business_day, milestone_due_date, subtract_business_days


def test_easter_2027_holidays_are_not_business_days() -> None:
    # Maundy Thursday 25 March, Good Friday 26 March, Easter Monday 29 March 2027.
    for day in (date(2027, 3, 25), date(2027, 3, 26), date(2027, 3, 28), date(2027, 3, 29)):
        assert not is_business_day(day)
    assert is_business_day(date(2027, 3, 24))
    assert is_business_day(date(2027, 3, 30))


def test_counting_back_over_easter_skips_the_holidays_and_the_weekend() -> None:
    # Tuesday 30 March 2027: one business day back is Wednesday 24 March.
    assert subtract_business_days(date(2027, 3, 30), 1) == date(2027, 3, 24)
    assert subtract_business_days(date(2027, 3, 30), 2) == date(2027, 3, 23)


def test_counting_back_over_christmas() -> None:
    # Monday 27 December 2027 is a business day (Boxing Day is a Sunday); before it: Christmas
    # Day Saturday, Friday 24th is a business day.
    assert subtract_business_days(date(2027, 12, 28), 1) == date(2027, 12, 27)
    # 2026: Christmas Day Friday 25th, Boxing Day Saturday 26th.
    assert subtract_business_days(date(2026, 12, 28), 1) == date(2026, 12, 24)


def test_constitution_day_is_skipped() -> None:
    # Tuesday 18 May 2027; 17 May (Monday) is Constitution Day and Whit Monday.
    assert subtract_business_days(date(2027, 5, 18), 1) == date(2027, 5, 14)


def test_zero_business_days_is_the_day_itself_and_negative_is_refused() -> None:
    assert subtract_business_days(date(2027, 3, 28), 0) == date(2027, 3, 28)
    with pytest.raises(ValueError, match="negative"):
        subtract_business_days(date(2027, 3, 28), -1)


def test_milestones_count_calendar_or_business_days() -> None:
    release = date(2027, 3, 30)
    assert milestone_due_date(release, 7, business_days=False) == date(2027, 3, 23)
    # Business days back from Tue 30 Mar: 24, 23, 22, 19, 18, 17, 16 March.
    assert milestone_due_date(release, 7, business_days=True) == date(2027, 3, 16)
    assert milestone_due_date(release, 0, business_days=True) == release
