"""Business-day arithmetic for notice milestones (kept in :mod:`shared.business_days`, which
notify-worker uses too; re-exported here for agreement-api's own modules)."""

from __future__ import annotations

from shared.business_days import is_business_day, milestone_due_date, subtract_business_days

__all__ = ["is_business_day", "milestone_due_date", "subtract_business_days"]
