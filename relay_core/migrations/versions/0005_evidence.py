"""Evidence and the legal gate: the exact consent texts (content-addressed, kept while a consent
names them), the legal-review attestations credits were computed under; redirect handoffs that
were recorded as delivered become `redirected` (nothing was ever sent to those agencies).

Revision ID: 0005_evidence
Revises: 0004_console
"""

import sqlalchemy as sa
from alembic import op

from relay_core.store.tables import UTCDateTime

revision = "0005_evidence"
down_revision = "0004_console"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consent_texts",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("html", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("sha256", name="pk_consent_texts"),
    )
    op.create_table(
        "ledger_attestations",
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("reviewer", sa.Text, nullable=False),
        sa.Column("reviewed_on", sa.String(10), nullable=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("notification_number", sa.String(64), nullable=False),
        sa.Column("rule", sa.String(32), nullable=False),
        sa.Column("first_used_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("fingerprint", name="pk_ledger_attestations"),
    )
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("CREATE TRIGGER consent_texts_no_update BEFORE UPDATE ON consent_texts "
                   "BEGIN SELECT RAISE(ABORT, 'consent_texts rows are never updated'); END")
        op.execute("CREATE TRIGGER consent_texts_no_delete BEFORE DELETE ON consent_texts "
                   "WHEN EXISTS (SELECT 1 FROM consents WHERE consents.text_sha256 = OLD.sha256) "
                   "BEGIN SELECT RAISE(ABORT, 'a consent refers to this consent text'); END")
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER ledger_attestations_no_{verb.lower()} BEFORE {verb} "
                       "ON ledger_attestations BEGIN SELECT RAISE(ABORT, "
                       "'ledger_attestations is append-only'); END")
    elif dialect == "postgresql":
        op.execute("CREATE FUNCTION consent_texts_guard() RETURNS trigger AS $$ BEGIN "
                   "IF TG_OP = 'UPDATE' THEN "
                   "RAISE EXCEPTION 'consent_texts rows are never updated'; END IF; "
                   "IF EXISTS (SELECT 1 FROM consents WHERE consents.text_sha256 = OLD.sha256) "
                   "THEN RAISE EXCEPTION 'a consent refers to this consent text'; END IF; "
                   "RETURN OLD; END $$ LANGUAGE plpgsql")
        op.execute("CREATE TRIGGER consent_texts_guard BEFORE UPDATE OR DELETE ON consent_texts "
                   "FOR EACH ROW EXECUTE FUNCTION consent_texts_guard()")
        op.execute("CREATE FUNCTION ledger_attestations_append_only() RETURNS trigger AS $$ "
                   "BEGIN RAISE EXCEPTION 'ledger_attestations is append-only'; END $$ "
                   "LANGUAGE plpgsql")
        op.execute("CREATE TRIGGER ledger_attestations_append_only BEFORE UPDATE OR DELETE ON "
                   "ledger_attestations FOR EACH ROW EXECUTE FUNCTION "
                   "ledger_attestations_append_only()")
    # A redirect agency never received anything: its handoffs were `delivered` only in name.
    op.execute("UPDATE handoffs SET state = 'redirected' WHERE state = 'delivered' AND id IN "
               "(SELECT handoff_id FROM handoff_references WHERE channel = 'redirect')")


def downgrade() -> None:
    op.execute("UPDATE handoffs SET state = 'delivered' WHERE state = 'redirected'")
    op.drop_table("ledger_attestations")
    op.drop_table("consent_texts")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS ledger_attestations_append_only()")
        op.execute("DROP FUNCTION IF EXISTS consent_texts_guard()")
