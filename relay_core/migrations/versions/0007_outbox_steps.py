"""Issue 13 (exactly once through crashes): each outbox message moves step by step
(pending → claimed → handing_over → sent | failed | gave_up | ambiguous), and the row says who
claimed it (`claimed_by`, host:pid:token) and until when (`claimed_until`, a short lease), when
DATA began (`handing_over_at`), how many temporary failures it met (`temp_failures`), the last
server reply (`last_reply`) and when retrying stops (`give_up_at`).

A row a 0006 process left `sending` may have been anywhere between claim and reply, and its
claimer is unknown: it becomes `handing_over` with no claimer, which recovery treats as
ambiguous for SMTP (never silently resent) and re-queues for the file outbox.

Revision ID: 0007_outbox_steps
Revises: 0006_emails
"""

import sqlalchemy as sa
from alembic import op

from relay_core.store.tables import UTCDateTime

revision = "0007_outbox_steps"
down_revision = "0006_emails"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(160)))
        batch.add_column(sa.Column("claimed_until", UTCDateTime))
        batch.add_column(sa.Column("handing_over_at", UTCDateTime))
        batch.add_column(sa.Column("temp_failures", sa.Integer, nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("last_reply", sa.Text, nullable=False, server_default=""))
        batch.add_column(sa.Column("give_up_at", UTCDateTime))
    op.execute("UPDATE outbox SET state = 'handing_over' WHERE state = 'sending'")


def downgrade() -> None:
    op.execute("UPDATE outbox SET state = 'sending' "
               "WHERE state IN ('claimed', 'handing_over', 'ambiguous')")
    op.execute("UPDATE outbox SET state = 'failed' WHERE state = 'gave_up'")
    op.execute("UPDATE relay_cases SET state = 'failed' WHERE state = 'ambiguous'")
    with op.batch_alter_table("outbox") as batch:
        for column in ("give_up_at", "last_reply", "temp_failures", "handing_over_at",
                       "claimed_until", "claimed_by"):
            batch.drop_column(column)
