"""The revision that adds ``notify_told`` fills it from the notices already delivered, on PostgreSQL
and on SQLite (the embedded mode), and its downgrade drops it again."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect, select

from notify_worker.deliveries.models import DeliveryState
from notify_worker.notices.models import (
    AgreementSource,
    NoticeKind,
    NoticeState,
    NotifyNotice,
    NotifyTold,
    RecipientKind,
)
from shared.db import create_engine, create_sessionmaker, unit_of_work
from tests.conftest import create_database, drop_database, run_alembic
from tests.infra import Postgres, unique_name
from tests.notify_worker.test_told import delivery

BEFORE = "e1a000000001"  # the revision before notify_told
T0 = datetime(2027, 1, 4, 7, 0, tzinfo=UTC)


@pytest.fixture(params=["postgresql", "sqlite"])
async def url(request: pytest.FixtureRequest, postgres: Postgres, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'told.sqlite3'}"
        return
    name = unique_name("tilbake_told")
    try:
        yield await create_database(postgres, name)
    finally:
        await drop_database(postgres, name)


def _notice(
    case_id: uuid.UUID,
    recipient: uuid.UUID,
    *,
    milestone: int | None,
    release: date,
    state: NoticeState = NoticeState.DELIVERED,
    delivered_at: datetime | None = None,
    updated_at: datetime,
) -> NotifyNotice:
    return NotifyNotice(
        case_id=case_id,
        recipient_organization_id=recipient,
        recipient_kind=RecipientKind.MUNICIPALITY,
        agreement_source=AgreementSource.DEFAULT,
        kind=NoticeKind.MILESTONE if milestone is not None else NoticeKind.CHANGE,
        milestone_days=milestone,
        release_date=release,
        due_at=T0 - timedelta(days=1),
        state=state,
        receipt_deadline_days=5,
        delivered_at=delivered_at,
        created_at=T0 - timedelta(days=1),
        updated_at=updated_at,
    )


async def test_the_told_record_is_filled_from_the_notices_already_delivered(url: str) -> None:
    await asyncio.to_thread(run_alembic, command.upgrade, url, BEFORE)
    case_a, case_b, case_c, oslo, nav = (uuid.uuid4() for _ in range(5))
    day = timedelta(days=1)
    # Oslo was told 1 March, then 8 March; a receipt later touched the first notice.
    first = _notice(
        case_a, oslo, milestone=90, release=date(2027, 3, 1), delivered_at=T0, updated_at=T0 + 10 * day
    )
    change = _notice(
        case_a, oslo, milestone=None, release=date(2027, 3, 8), delivered_at=T0 + day, updated_at=T0 + day
    )
    claimed = _notice(
        case_a,
        oslo,
        milestone=30,
        release=date(2027, 3, 15),
        state=NoticeState.CLAIMED,
        updated_at=T0 + 11 * day,
    )
    # NAV: one notice delivered before delivered_at existed (its delivery ended at T0 + 2 days), and
    # one delivered later at T0 + 3 days.
    old = _notice(case_a, nav, milestone=90, release=date(2027, 3, 1), updated_at=T0 + 9 * day)
    later = _notice(
        case_a,
        nav,
        milestone=30,
        release=date(2027, 3, 8),
        delivered_at=T0 + 3 * day,
        updated_at=T0 + 3 * day,
    )
    # Nothing but updated_at to go by.
    bare = _notice(case_b, oslo, milestone=90, release=date(2027, 4, 1), updated_at=T0 + 4 * day)
    dead = _notice(
        case_c, oslo, milestone=90, release=date(2027, 5, 1), state=NoticeState.DEAD, updated_at=T0
    )
    engine = create_engine(url)
    try:
        async with unit_of_work(create_sessionmaker(engine)) as session:
            session.add_all([first, change, claimed, old, later, bare, dead])
            await session.flush()
            session.add(delivery(old, DeliveryState.SUCCEEDED, T0 + 2 * day))
        await asyncio.to_thread(run_alembic, command.upgrade, url, "head")

        async with create_sessionmaker(engine)() as session:
            rows = (await session.execute(select(NotifyTold))).scalars().all()
            told = {
                (r.case_id, r.recipient_organization_id): (r.release_date, r.notice_id, r.told_at)
                for r in rows
            }
        assert told == {
            (case_a, oslo): (date(2027, 3, 8), change.id, T0 + day),
            (case_a, nav): (date(2027, 3, 8), later.id, T0 + 3 * day),
            (case_b, oslo): (date(2027, 4, 1), bare.id, T0 + 4 * day),
        }

        await asyncio.to_thread(run_alembic, command.downgrade, url, BEFORE)
        async with engine.connect() as connection:
            tables = set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
        assert "notify_told" not in tables
        assert "notify_notice" in tables
    finally:
        await engine.dispose()
