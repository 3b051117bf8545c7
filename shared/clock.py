"""Norwegian local time: release dates, due dates and "today" mean the date in Norway.

The `tzdata` package guarantees the zone exists even where the OS has no zoneinfo database."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

OSLO = ZoneInfo("Europe/Oslo")


def oslo_today() -> date:
    return datetime.now(OSLO).date()
