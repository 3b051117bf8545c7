"""notify-worker: superseded deliveries stay as history beside the live one

Revision ID: a5d000000001
Revises: 76ecd1cc238b
Create Date: 2026-12-06 13:25:00

A delivery whose notice changed before it succeeded (the release date moved, consent was withdrawn)
is ended as ``superseded`` and the notice is planned again with new deliveries. The unique
constraint on (notice, endpoint) becomes a unique index over the deliveries that are not
superseded, so the old ones can stay with their attempts.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a5d000000001"
down_revision: str | None = "76ecd1cc238b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = sa.text("state <> 'superseded'")


def upgrade() -> None:
    with op.batch_alter_table("notify_delivery") as batch:
        batch.drop_constraint("uq_notify_delivery_notice_endpoint", type_="unique")
    op.create_index(
        "uq_notify_delivery_notice_endpoint",
        "notify_delivery",
        ["notice_id", "endpoint_id"],
        unique=True,
        postgresql_where=LIVE,
        sqlite_where=LIVE,
    )


def downgrade() -> None:
    # Superseded deliveries cannot stay beside the live one under the old constraint.
    op.execute(
        "DELETE FROM notify_attempt WHERE delivery_id IN (SELECT id FROM notify_delivery WHERE state = 'superseded')"
    )
    op.execute("DELETE FROM notify_delivery WHERE state = 'superseded'")
    op.drop_index("uq_notify_delivery_notice_endpoint", table_name="notify_delivery")
    with op.batch_alter_table("notify_delivery") as batch:
        batch.create_unique_constraint("uq_notify_delivery_notice_endpoint", ["notice_id", "endpoint_id"])
