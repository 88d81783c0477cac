"""Handoff: agency references, APPI Art. 29 provision records (never updated), agency events
and the credit ledger (append-only).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from relay_core.store.tables import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "handoff_references",
        sa.Column("handoff_id", sa.Integer, nullable=False),
        sa.Column("agency_id", sa.String(64), nullable=False),
        sa.Column("reference", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("last_signed", sa.Integer),
        sa.PrimaryKeyConstraint("handoff_id", name="pk_handoff_references"),
        sa.ForeignKeyConstraint(["handoff_id"], ["handoffs.id"],
                                name="fk_handoff_references_handoff_id_handoffs"),
        sa.UniqueConstraint("reference", name="uq_handoff_references_reference"),
    )

    op.create_table(
        "provision_records",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("handoff_id", sa.Integer, nullable=False),
        sa.Column("consent_id", sa.Integer, nullable=False),
        sa.Column("case_id", sa.Integer, nullable=False),
        sa.Column("consent_reference", sa.String(128), nullable=False),
        sa.Column("consented_at", UTCDateTime, nullable=False),
        sa.Column("agency_id", sa.String(64), nullable=False),
        sa.Column("recipient_legal_name", sa.Text, nullable=False),
        sa.Column("recipient_address", sa.Text, nullable=False),
        sa.Column("recipient_country", sa.String(8), nullable=False),
        sa.Column("candidate_ref", sa.String(255), nullable=False),
        sa.Column("items_json", sa.Text, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("destination", sa.Text, nullable=False),
        sa.Column("provided_at", UTCDateTime, nullable=False),
        sa.Column("keep_until", UTCDateTime, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_provision_records"),
        sa.UniqueConstraint("handoff_id", name="uq_provision_records_handoff_id"),
    )
    op.create_index("ix_provision_records_case_id", "provision_records", ["case_id"])
    op.create_index("ix_provision_records_provided_at", "provision_records", ["provided_at"])
    op.create_index("ix_provision_records_keep_until", "provision_records", ["keep_until"])
    _no_update_trigger("provision_records")

    op.create_table(
        "agency_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("agency_id", sa.String(64), nullable=False),
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("reference", sa.String(64), nullable=False),
        sa.Column("handoff_id", sa.Integer, nullable=False),
        sa.Column("case_id", sa.Integer, nullable=False),
        sa.Column("occurred_at", UTCDateTime, nullable=False),
        sa.Column("received_at", UTCDateTime, nullable=False),
        sa.Column("via", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_agency_events"),
        sa.ForeignKeyConstraint(["handoff_id"], ["handoffs.id"],
                                name="fk_agency_events_handoff_id_handoffs"),
        sa.UniqueConstraint("agency_id", "event_id", name="uq_agency_events_agency_event"),
    )
    op.create_index("ix_agency_events_handoff_id", "agency_events", ["handoff_id"])
    op.create_index("ix_agency_events_case_id", "agency_events", ["case_id"])

    op.create_table(
        "credit_entries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("agency_id", sa.String(64), nullable=False),
        sa.Column("event_row_id", sa.Integer, nullable=False),
        sa.Column("rule", sa.String(32), nullable=False),
        sa.Column("credits", sa.Integer, nullable=False),
        sa.Column("yen", sa.Integer, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("occurred_at", UTCDateTime, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_credit_entries"),
        sa.ForeignKeyConstraint(["event_row_id"], ["agency_events.id"],
                                name="fk_credit_entries_event_row_id_agency_events"),
    )
    op.create_index("ix_credit_entries_agency_id", "credit_entries", ["agency_id"])
    _append_only_triggers("credit_entries")


def _no_update_trigger(table: str) -> None:
    """A provision record is never changed; `purge` may delete it after its retention only."""
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
                   f"BEGIN SELECT RAISE(ABORT, '{table} rows are never updated'); END")
    elif op.get_bind().dialect.name == "postgresql":
        op.execute(f"CREATE FUNCTION {table}_no_update() RETURNS trigger AS $$ BEGIN "
                   f"RAISE EXCEPTION '{table} rows are never updated'; END $$ LANGUAGE plpgsql")
        op.execute(f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
                   f"FOR EACH ROW EXECUTE FUNCTION {table}_no_update()")


def _append_only_triggers(table: str) -> None:
    if op.get_bind().dialect.name == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                       f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END")
    elif op.get_bind().dialect.name == "postgresql":
        op.execute(f"CREATE FUNCTION {table}_append_only() RETURNS trigger AS $$ BEGIN "
                   f"RAISE EXCEPTION '{table} is append-only'; END $$ LANGUAGE plpgsql")
        op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                   f"FOR EACH ROW EXECUTE FUNCTION {table}_append_only()")


def downgrade() -> None:
    for table in ("credit_entries", "agency_events", "provision_records",
                  "handoff_references"):
        op.drop_table(table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS credit_entries_append_only()")
        op.execute("DROP FUNCTION IF EXISTS provision_records_no_update()")
