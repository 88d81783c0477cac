"""Consent: relay status per case, consent evidence with its agencies and preferences, the
pending handoffs and the deletion notices queued by a withdrawal.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from relay_core.store.tables import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "relay_status",
        sa.Column("case_id", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("changed_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("case_id", name="pk_relay_status"),
        sa.ForeignKeyConstraint(["case_id"], ["relay_cases.id"],
                                name="fk_relay_status_case_id_relay_cases"),
    )
    op.create_index("ix_relay_status_status", "relay_status", ["status"])

    op.create_table(
        "consents",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.Integer, nullable=False),
        sa.Column("invitation_id", sa.Integer, nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("application_id", sa.String(128), nullable=False),
        sa.Column("candidate_id", sa.String(128), nullable=False),
        sa.Column("text_version", sa.String(64), nullable=False),
        sa.Column("text_sha256", sa.String(64), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("method", sa.String(32), nullable=False),
        sa.Column("consented_at", UTCDateTime, nullable=False),
        sa.Column("withdrawn_at", UTCDateTime),
        sa.Column("withdrawal_method", sa.String(32)),
        sa.PrimaryKeyConstraint("id", name="pk_consents"),
        sa.ForeignKeyConstraint(["case_id"], ["relay_cases.id"],
                                name="fk_consents_case_id_relay_cases"),
        sa.ForeignKeyConstraint(["invitation_id"], ["invitations.id"],
                                name="fk_consents_invitation_id_invitations"),
        sa.UniqueConstraint("case_id", name="uq_consents_case_id"),
    )

    op.create_table(
        "consent_agencies",
        sa.Column("consent_id", sa.Integer, nullable=False),
        sa.Column("agency_id", sa.String(64), nullable=False),
        sa.Column("legal_name", sa.Text, nullable=False),
        sa.Column("fields_json", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("consent_id", "agency_id", name="pk_consent_agencies"),
        sa.ForeignKeyConstraint(["consent_id"], ["consents.id"],
                                name="fk_consent_agencies_consent_id_consents"),
    )

    op.create_table(
        "consent_preferences",
        sa.Column("consent_id", sa.Integer, nullable=False),
        sa.Column("desired_role", sa.Text, nullable=False),
        sa.Column("location", sa.Text, nullable=False),
        sa.Column("start_period", sa.Text, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("consent_id", name="pk_consent_preferences"),
        sa.ForeignKeyConstraint(["consent_id"], ["consents.id"],
                                name="fk_consent_preferences_consent_id_consents"),
    )

    op.create_table(
        "handoffs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("consent_id", sa.Integer, nullable=False),
        sa.Column("case_id", sa.Integer, nullable=False),
        sa.Column("agency_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UTCDateTime),
        sa.Column("last_error", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("delivered_at", UTCDateTime),
        sa.PrimaryKeyConstraint("id", name="pk_handoffs"),
        sa.ForeignKeyConstraint(["consent_id"], ["consents.id"],
                                name="fk_handoffs_consent_id_consents"),
        sa.ForeignKeyConstraint(["case_id"], ["relay_cases.id"],
                                name="fk_handoffs_case_id_relay_cases"),
        sa.UniqueConstraint("consent_id", "agency_id", name="uq_handoffs_consent_agency"),
    )
    op.create_index("ix_handoffs_case_id", "handoffs", ["case_id"])
    op.create_index("ix_handoffs_state", "handoffs", ["state"])

    op.create_table(
        "deletion_notices",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("handoff_id", sa.Integer, nullable=False),
        sa.Column("case_id", sa.Integer, nullable=False),
        sa.Column("agency_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UTCDateTime),
        sa.Column("last_error", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("sent_at", UTCDateTime),
        sa.PrimaryKeyConstraint("id", name="pk_deletion_notices"),
        sa.ForeignKeyConstraint(["handoff_id"], ["handoffs.id"],
                                name="fk_deletion_notices_handoff_id_handoffs"),
        sa.ForeignKeyConstraint(["case_id"], ["relay_cases.id"],
                                name="fk_deletion_notices_case_id_relay_cases"),
        sa.UniqueConstraint("handoff_id", name="uq_deletion_notices_handoff_id"),
    )
    op.create_index("ix_deletion_notices_case_id", "deletion_notices", ["case_id"])
    op.create_index("ix_deletion_notices_state", "deletion_notices", ["state"])


def downgrade() -> None:
    for table in ("deletion_notices", "handoffs", "consent_preferences", "consent_agencies",
                  "consents", "relay_status"):
        op.drop_table(table)
