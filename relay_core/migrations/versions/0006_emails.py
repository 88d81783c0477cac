"""Issue 10 (every person owed an answer gets the right email): when this installation first
polled each source (rejections before it are mailed only through `career-relay backfill`), why
a case's email goes without the relay invitation (`relay_cases.invite_note`), and room for the
language "bilingual" in `relay_cases.language`.

Revision ID: 0006_emails
Revises: 0004_console
"""

import sqlalchemy as sa
from alembic import op

from relay_core.store.tables import UTCDateTime

revision = "0006_emails"
down_revision = "0005_evidence"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "source_installs",
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("installed_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("source", name="pk_source_installs"),
    )
    with op.batch_alter_table("relay_cases") as batch:
        batch.add_column(sa.Column("invite_note", sa.Text, nullable=False,
                                   server_default=""))
        batch.alter_column("language", existing_type=sa.String(8), type_=sa.String(16),
                           existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("relay_cases") as batch:
        batch.alter_column("language", existing_type=sa.String(16), type_=sa.String(8),
                           existing_nullable=False)
        batch.drop_column("invite_note")
    op.drop_table("source_installs")
