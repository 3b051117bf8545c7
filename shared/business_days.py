"""Business-day arithmetic for notice milestones.

A business day is Monday to Friday and not a Norwegian public holiday (New Year's Day, Maundy
Thursday, Good Friday, Easter Sunday and Monday, 1 May, Ascension Day, Whit Sunday and Monday,
17 May, Christmas Day and Boxing Day), as the ``holidays`` package computes them for Norway.
"""

from __future__ import annotations

from datetime import date, timedelta

import holidays

_NORWAY = holidays.country_holidays("NO")


def is_business_day(day: date) -> bool:
    return day.weekday() < 5 and day not in _NORWAY


def subtract_business_days(day: date, n: int) -> date:
    """The date ``n`` business days before ``day`` (``n = 0`` returns ``day`` itself)."""
    if n < 0:
        raise ValueError("n must not be negative")
    current = day
    remaining = n
    while remaining:
        current -= timedelta(days=1)
        if is_business_day(current):
            remaining -= 1
    return current


def milestone_due_date(release_date: date, days: int, business_days: bool) -> date:
    """When a milestone ``days`` before release falls: calendar days, or business days."""
    if business_days:
        return subtract_business_days(release_date, days)
    return release_date - timedelta(days=days)
