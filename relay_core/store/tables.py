"""The store's tables (SQLAlchemy Core). Alembic migrations in relay_core/migrations own the DDL;
tests/test_store.py checks that these definitions and the migrations agree."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    ColumnElement,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    bindparam,
)


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes on every backend (SQLite forgets the offset otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


FIXED_IN = 16   # up to this many ids, an IN list of its own bound parameters


def id_arity(ids: list[int]) -> int:
    """The `n` of id_in for these ids: their number, or one shape for every longer list (the
    same expanding statement, so a cache keyed by it holds one entry for all of them)."""
    return min(len(ids), FIXED_IN + 1)


def id_in(column: ColumnElement, n: int) -> ColumnElement:
    """`column IN (...)` for `n` (id_arity) ids, with id_params(ids). The delivery loop runs
    statements for a few ids many times a second: an "expanding" IN is rendered again at every
    execution (a fifth of its cost), while a statement with n parameters is compiled once per
    n."""
    if n > FIXED_IN:
        return column.in_(bindparam("ids", expanding=True))
    return column.in_([bindparam(f"id_{i}", type_=Integer) for i in range(n)])


def id_params(ids: list[int]) -> dict[str, Any]:
    if len(ids) > FIXED_IN:
        return {"ids": ids}
    return {f"id_{i}": value for i, value in enumerate(ids)}


metadata = MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

relay_cases = Table(
    "relay_cases", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(64), nullable=False),
    Column("application_id", String(128), nullable=False),
    Column("ats", String(32), nullable=False),
    Column("candidate_id", String(128), nullable=False, default=""),
    Column("state", String(16), nullable=False, index=True),
    Column("reason", Text, nullable=False, default=""),
    Column("category", String(32), nullable=False),
    Column("language", String(16), nullable=False, default="ja"),   # ja | en | bilingual
    Column("invite", Boolean, nullable=False, default=True),
    # Personal data lives only in email/person_json/event_json so purge can blank exactly these.
    Column("email", String(320)),
    Column("person_key", String(64), index=True),
    Column("person_json", Text),
    Column("event_json", Text),
    Column("job_title", Text, nullable=False, default=""),
    Column("rejected_at", UTCDateTime, nullable=False),
    Column("detected_at", UTCDateTime, nullable=False),
    Column("send_at", UTCDateTime, index=True),
    Column("deadline_at", UTCDateTime),
    Column("sent_at", UTCDateTime),
    Column("late", Boolean, nullable=False, default=False),
    Column("message_id", String(255)),
    Column("updated_at", UTCDateTime, nullable=False),
    # Why the email goes without the relay invitation ("" when it carries one); 0006_emails.
    Column("invite_note", Text, nullable=False, default="", server_default=""),
    UniqueConstraint("source", "application_id", name="uq_relay_cases_source_application"),
)

# Append-only: the application never updates or deletes a row (enforced in store/db.py, and by
# triggers created in the migrations).
audit_log = Table(
    "audit_log", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("case_id", Integer, ForeignKey("relay_cases.id"), index=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(32), nullable=False),
    Column("from_state", String(16)),
    Column("to_state", String(16)),
    Column("reason", Text, nullable=False, default=""),
)

source_cursors = Table(
    "source_cursors", metadata,
    Column("source", String(64), primary_key=True),
    Column("cursor", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

outbox = Table(
    "outbox", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("case_id", Integer, ForeignKey("relay_cases.id"), index=True),
    Column("kind", String(32), nullable=False),
    Column("message_id", String(255), nullable=False, unique=True),
    Column("recipient", String(320)),
    Column("message", LargeBinary),      # the exact bytes, so a retry sends the same message
    # pending | claimed | handing_over | sent | failed | gave_up | ambiguous (store/outbox.py)
    Column("state", String(16), nullable=False, index=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime),
    Column("last_error", Text, nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime),
    Column("claimed_by", String(160)),          # host:pid:token of the process sending it
    Column("claimed_until", UTCDateTime),       # the claim's lease
    Column("handing_over_at", UTCDateTime),     # when DATA began
    Column("temp_failures", Integer, nullable=False, default=0, server_default="0"),
    Column("last_reply", Text, nullable=False, default="", server_default=""),
    Column("give_up_at", UTCDateTime),          # temporary failures stop being retried then
)

suppressions = Table(
    "suppressions", metadata,
    Column("address_hash", String(64), primary_key=True),
    Column("reason", Text, nullable=False),
    Column("at", UTCDateTime, nullable=False),
)

inbound_events = Table(
    "inbound_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(64), nullable=False),
    Column("event_id", String(255), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    UniqueConstraint("source", "event_id", name="uq_inbound_events_source_event"),
)

# Verified webhook deliveries, appended (group-committed) before the 200 and translated and
# ingested after it (store/inbox.py). The body holds personal data: it is dropped as soon as the
# row is processed, and purge deletes processed rows (records/retention.py).
webhook_inbox = Table(
    "webhook_inbox", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(64), nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("headers", Text, nullable=True),
    Column("body", LargeBinary, nullable=True),
    Column("event_id", String(255), nullable=True),
    Column("kind", String(64), nullable=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UTCDateTime, nullable=True),
    Column("processed_at", UTCDateTime, nullable=True, index=True),
    Column("outcome", String(64), nullable=True),
)

locks = Table(
    "locks", metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(128), nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)

# Relay links. Only the SHA-256 of a token is stored; the token itself exists only in the email.
invitations = Table(
    "invitations", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("case_id", Integer, ForeignKey("relay_cases.id"), nullable=False, index=True),
    Column("purpose", String(16), nullable=False),       # "consent" | "withdraw"
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("used_at", UTCDateTime),
)

# Keys the instance makes for itself when the config names none (the embedded default).
instance_keys = Table(
    "instance_keys", metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(128), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# --- Consent (migration 0002) -----------------------------------------------------------------
# The relay status of a sent case: no row means the invitation is open. A row is inserted once
# (consented | declined | expired): the primary key lets only one of two racing requests win.
# Only `consented → withdrawn` is an update.
relay_status = Table(
    "relay_status", metadata,
    Column("case_id", Integer, ForeignKey("relay_cases.id"), primary_key=True),
    Column("status", String(16), nullable=False, index=True),
    Column("changed_at", UTCDateTime, nullable=False),
)

# Consent evidence (reference/privacy_email.md sec. 6 item 4). Identifiers only: the candidate's
# name and address stay in relay_cases, which retention may blank without touching this record.
consents = Table(
    "consents", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("case_id", Integer, ForeignKey("relay_cases.id"), nullable=False, unique=True),
    Column("invitation_id", Integer, ForeignKey("invitations.id"), nullable=False),
    Column("source", String(64), nullable=False),
    Column("application_id", String(128), nullable=False),
    Column("candidate_id", String(128), nullable=False),
    Column("text_version", String(64), nullable=False),
    Column("text_sha256", String(64), nullable=False),
    Column("language", String(8), nullable=False),
    Column("method", String(32), nullable=False),
    Column("consented_at", UTCDateTime, nullable=False),
    Column("withdrawn_at", UTCDateTime),
    Column("withdrawal_method", String(32)),
)

# One row per agency the candidate ticked, with the exact data items it may receive.
consent_agencies = Table(
    "consent_agencies", metadata,
    Column("consent_id", Integer, ForeignKey("consents.id"), primary_key=True),
    Column("agency_id", String(64), primary_key=True),
    Column("legal_name", Text, nullable=False),
    Column("fields_json", Text, nullable=False),
)

# The optional preferences; personal data, deleted as soon as the consent is withdrawn.
consent_preferences = Table(
    "consent_preferences", metadata,
    Column("consent_id", Integer, ForeignKey("consents.id"), primary_key=True),
    Column("desired_role", Text, nullable=False, default=""),
    Column("location", Text, nullable=False, default=""),
    Column("start_period", Text, nullable=False, default=""),
    Column("message", Text, nullable=False, default=""),
)

# One handoff per consented agency: pending → delivered | retrying → dead; withdrawal moves
# pending/retrying/sending ones to `stopped`.
handoffs = Table(
    "handoffs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("consent_id", Integer, ForeignKey("consents.id"), nullable=False),
    Column("case_id", Integer, ForeignKey("relay_cases.id"), nullable=False, index=True),
    Column("agency_id", String(64), nullable=False),
    Column("state", String(16), nullable=False, index=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime),
    Column("last_error", Text, nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("delivered_at", UTCDateTime),
    UniqueConstraint("consent_id", "agency_id", name="uq_handoffs_consent_agency"),
)

# After a withdrawal, one delete/stop-use notice per handoff that reached its agency.
deletion_notices = Table(
    "deletion_notices", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("handoff_id", Integer, ForeignKey("handoffs.id"), nullable=False, unique=True),
    Column("case_id", Integer, ForeignKey("relay_cases.id"), nullable=False, index=True),
    Column("agency_id", String(64), nullable=False),
    Column("state", String(16), nullable=False, index=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime),
    Column("last_error", Text, nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime),
)

# --- Handoff, provision records, ledger (migration 0003) --------------------------------------
# The opaque reference an agency quotes back (events, CSV); one per handoff, made on first use.
handoff_references = Table(
    "handoff_references", metadata,
    Column("handoff_id", Integer, ForeignKey("handoffs.id"), primary_key=True),
    Column("agency_id", String(64), nullable=False),
    Column("reference", String(64), nullable=False, unique=True),
    Column("channel", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    # The last signature timestamp used for this reference: every attempt signs a later one,
    # even across a restart within the same second, so no two requests share a signature.
    Column("last_signed", Integer),
)

# APPI Art. 29 provision records: written in the transaction that records a transfer, never
# updated (trigger), deleted only by `purge` once `keep_until` (≥ 3 years) has passed. No foreign
# keys: they must outlive anything retention does to the candidate's data. Identifiers only.
provision_records = Table(
    "provision_records", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("handoff_id", Integer, nullable=False, unique=True),
    Column("consent_id", Integer, nullable=False),
    Column("case_id", Integer, nullable=False, index=True),
    Column("consent_reference", String(128), nullable=False),
    Column("consented_at", UTCDateTime, nullable=False),
    Column("agency_id", String(64), nullable=False),
    Column("recipient_legal_name", Text, nullable=False),
    Column("recipient_address", Text, nullable=False),
    Column("recipient_country", String(8), nullable=False),
    Column("candidate_ref", String(255), nullable=False),
    Column("items_json", Text, nullable=False),
    Column("channel", String(16), nullable=False),
    Column("destination", Text, nullable=False),
    Column("provided_at", UTCDateTime, nullable=False, index=True),
    Column("keep_until", UTCDateTime, nullable=False, index=True),
    Column("note", Text, nullable=False, default=""),
)

# What agencies report back; (agency, event id) makes a redelivery harmless.
agency_events = Table(
    "agency_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("agency_id", String(64), nullable=False),
    Column("event_id", String(128), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("reference", String(64), nullable=False),
    Column("handoff_id", Integer, ForeignKey("handoffs.id"), nullable=False, index=True),
    Column("case_id", Integer, nullable=False, index=True),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("via", String(16), nullable=False),
    UniqueConstraint("agency_id", "event_id", name="uq_agency_events_agency_event"),
)

# The credit ledger: append-only entries, a reversal is a negative entry.
credit_entries = Table(
    "credit_entries", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("agency_id", String(64), nullable=False, index=True),
    Column("event_row_id", Integer, ForeignKey("agency_events.id"), nullable=False),
    Column("rule", String(32), nullable=False),
    Column("credits", Integer, nullable=False),
    Column("yen", Integer, nullable=False, default=0),
    Column("reason", Text, nullable=False, default=""),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# --- The HR console and the cycle's history (migration 0004_console) -------------------------
# Console accounts, made with `career-relay admin add`. Only an argon2id hash is kept; an
# account without one signs in through the company's identity provider (OpenID Connect), which
# must vouch for `email`. Consecutive failures lock the account until `locked_until`.
admin_accounts = Table(
    "admin_accounts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(40), nullable=False, unique=True),
    Column("email", String(320), unique=True),
    Column("password_hash", Text),
    Column("failed_sign_ins", Integer, nullable=False, default=0),
    Column("locked_until", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_sign_in_at", UTCDateTime),
)

# Signed-in console sessions: the cookie holds a random token, the store only its SHA-256, so
# a copy of the database signs nobody in. Each session has its own CSRF token.
admin_sessions = Table(
    "admin_sessions", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("account_id", Integer, ForeignKey("admin_accounts.id"), nullable=False, index=True),
    Column("csrf_token", String(64), nullable=False),
    Column("method", String(16), nullable=False),         # "password" | "oidc"
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)

# One row per finished cycle (`run` or a `serve` cycle): counts and error messages, which never
# hold personal data. The console's dashboard shows the last one.
cycle_runs = Table(
    "cycle_runs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=False, index=True),
    Column("ok", Boolean, nullable=False),
    Column("summary_json", Text, nullable=False),
)

# Each source's last poll: when it was tried, when it last succeeded, and why it last failed.
source_polls = Table(
    "source_polls", metadata,
    Column("source", String(64), primary_key=True),
    Column("last_attempt_at", UTCDateTime, nullable=False),
    Column("last_success_at", UTCDateTime),
    Column("last_error", Text, nullable=False, default=""),
)

# --- First install (migration 0006_emails) ----------------------------------------------------
# When this installation first polled each source successfully. Rejections made before it are
# skipped with a reason unless `career-relay backfill --since DATE` opts them in, so a new
# installation never mails the ATS's backlog by itself.
source_installs = Table(
    "source_installs", metadata,
    Column("source", String(64), primary_key=True),
    Column("installed_at", UTCDateTime, nullable=False),
)

# --- Evidence and the legal gate (migration 0005_evidence) -----------------------------------
# The exact consent text a candidate was shown, once per SHA-256 of its bytes (content-addressed:
# the same text in the same language for the same agency set is stored once). Never updated,
# and never deleted while a consent names its hash (database triggers), so `career-relay
# evidence` can show and verify it years after the configuration changed. No personal data.
consent_texts = Table(
    "consent_texts", metadata,
    Column("sha256", String(64), primary_key=True),
    Column("language", String(8), nullable=False),
    Column("version", String(64), nullable=False),
    Column("html", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# Each legal-review attestation ([ledger.legal_review]) the ledger computed credits under,
# written when it is first used; append-only. `report` shows the one in force.
ledger_attestations = Table(
    "ledger_attestations", metadata,
    Column("fingerprint", String(64), primary_key=True),
    Column("reviewer", Text, nullable=False),
    Column("reviewed_on", String(10), nullable=False),
    Column("document", Text, nullable=False),
    Column("notification_number", String(64), nullable=False, default=""),
    Column("rule", String(32), nullable=False),
    Column("first_used_at", UTCDateTime, nullable=False),
)
