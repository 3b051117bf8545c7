"""case-api: one open case per person

Revision ID: c0a5e0000002
Revises: a5d000000001
Create Date: 2026-12-06 18:00:00

A person has at most one case that is not closed: a unique index on ``case_case.person_id`` over the
cases whose status is not ``closed`` (a partial index, on PostgreSQL and SQLite alike), so two
concurrent opens for one person cannot both commit. A database that already holds a person with
several open cases is not changed: which of them to close is a caseworker's decision, so the
upgrade stops and says how to find them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c0a5e0000002"
down_revision: str | None = "a5d000000001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = sa.text("status <> 'closed'")
SEVERAL_OPEN = (
    "SELECT person_id, count(*) AS open_cases FROM case_case WHERE status <> 'closed' "
    "GROUP BY person_id HAVING count(*) > 1"
)


def upgrade() -> None:
    several = op.get_bind().execute(sa.text(SEVERAL_OPEN)).all()
    if several:
        raise RuntimeError(
            f"{len(several)} person(s) have more than one open case; close all but one of each, then "
            f"upgrade again. They are: {SEVERAL_OPEN}"
        )
    op.create_index(
        "uq_case_case_person_open",
        "case_case",
        ["person_id"],
        unique=True,
        postgresql_where=OPEN,
        sqlite_where=OPEN,
    )


def downgrade() -> None:
    op.drop_index("uq_case_case_person_open", table_name="case_case")
