"""notify-worker: what each recipient was last told

Revision ID: 76ecd1cc238b
Revises: e1a000000001
Create Date: 2026-12-06 12:56:45.787751

``notify_told`` records, per case and recipient, the date the notice delivered to it last announced.
It is filled from the notices already delivered, so a deployed worker does not forget what
recipients were told: per case and recipient the delivered notice with the latest moment of
delivery (``delivered_at``; for a notice delivered before that column existed, its first
succeeded delivery's end, else its ``updated_at``), the later created on a tie.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import shared.db

revision: str = "76ecd1cc238b"
down_revision: str | None = "e1a000000001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ = (sqlmodel, shared.db)

# Plain SQL that PostgreSQL and SQLite (3.25 or later: window functions) both run.
FILL = """
INSERT INTO notify_told (case_id, recipient_organization_id, release_date, notice_id, told_at)
SELECT case_id, recipient_organization_id, release_date, id, told_at
FROM (
    SELECT delivered.*,
           ROW_NUMBER() OVER (
               PARTITION BY case_id, recipient_organization_id
               ORDER BY told_at DESC, created_at DESC, id DESC
           ) AS latest
    FROM (
        SELECT n.case_id, n.recipient_organization_id, n.release_date, n.id, n.created_at,
               COALESCE(
                   n.delivered_at,
                   (SELECT MIN(d.ended_at) FROM notify_delivery d
                    WHERE d.notice_id = n.id AND d.state = 'succeeded'),
                   n.updated_at
               ) AS told_at
        FROM notify_notice n
        WHERE n.state = 'delivered'
    ) delivered
) ranked
WHERE latest = 1
"""


def upgrade() -> None:
    op.create_table(
        "notify_told",
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("recipient_organization_id", sa.Uuid(), nullable=False),
        sa.Column("release_date", sa.Date(), nullable=False),
        sa.Column("notice_id", sa.Uuid(), nullable=False),
        sa.Column("told_at", shared.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["notice_id"], ["notify_notice.id"], name=op.f("fk_notify_told_notice_id_notify_notice")
        ),
        sa.PrimaryKeyConstraint("case_id", "recipient_organization_id", name=op.f("pk_notify_told")),
    )
    op.execute(FILL)


def downgrade() -> None:
    # The record is derived from the delivered notices, which stay: nothing is lost.
    op.drop_table("notify_told")
