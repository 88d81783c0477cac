"""Issue 14 (webhook bursts): the webhook inbox. A verified delivery is appended here (group
commit) before the 200 and translated and ingested after it, so a burst is acknowledged at the
speed of an append and an acknowledged delivery survives a crash.

Revision ID: 0008_webhook_inbox
Revises: 0007_outbox_steps
"""

import sqlalchemy as sa
from alembic import op

from relay_core.store.tables import UTCDateTime

revision = "0008_webhook_inbox"
down_revision = "0007_outbox_steps"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_inbox",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("received_at", UTCDateTime, nullable=False),
        sa.Column("headers", sa.Text, nullable=True),
        sa.Column("body", sa.LargeBinary, nullable=True),
        sa.Column("event_id", sa.String(255), nullable=True),
        sa.Column("kind", sa.String(64), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", UTCDateTime, nullable=True),
        sa.Column("processed_at", UTCDateTime, nullable=True),
        sa.Column("outcome", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_inbox"),
    )
    op.create_index("ix_webhook_inbox_processed_at", "webhook_inbox", ["processed_at"])


def downgrade() -> None:
    op.drop_index("ix_webhook_inbox_processed_at", table_name="webhook_inbox")
    op.drop_table("webhook_inbox")
