"""The HR console: admin accounts and sessions; the cycle's history (last cycle, each source's
last successful poll) for its dashboard.

Revision ID: 0004_console
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

from relay_core.store.tables import UTCDateTime

revision = "0004_console"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "admin_accounts",
        sa.Column("id", sa.Integer, autoincrement=True),
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("email", sa.String(320)),
        sa.Column("password_hash", sa.Text),
        sa.Column("failed_sign_ins", sa.Integer, nullable=False),
        sa.Column("locked_until", UTCDateTime),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("last_sign_in_at", UTCDateTime),
        sa.PrimaryKeyConstraint("id", name="pk_admin_accounts"),
        sa.UniqueConstraint("name", name="uq_admin_accounts_name"),
        sa.UniqueConstraint("email", name="uq_admin_accounts_email"),
    )
    op.create_table(
        "admin_sessions",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("account_id", sa.Integer, nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("last_seen_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name="pk_admin_sessions"),
        sa.ForeignKeyConstraint(["account_id"], ["admin_accounts.id"],
                                name="fk_admin_sessions_account_id_admin_accounts"),
    )
    op.create_index("ix_admin_sessions_account_id", "admin_sessions", ["account_id"])
    op.create_table(
        "cycle_runs",
        sa.Column("id", sa.Integer, autoincrement=True),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("finished_at", UTCDateTime, nullable=False),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("summary_json", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_cycle_runs"),
    )
    op.create_index("ix_cycle_runs_finished_at", "cycle_runs", ["finished_at"])
    op.create_table(
        "source_polls",
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("last_attempt_at", UTCDateTime, nullable=False),
        sa.Column("last_success_at", UTCDateTime),
        sa.Column("last_error", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("source", name="pk_source_polls"),
    )


def downgrade() -> None:
    for table in ("source_polls", "cycle_runs", "admin_sessions", "admin_accounts"):
        op.drop_table(table)
