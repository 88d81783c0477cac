"""The opt-out of an `invite_only` email (特定電子メール法 Art. 4; reference/privacy_email.md
sec. 1.7): a mail whose only content is the relay invitation is promotional, so it carries the
sender's name and postal address and a link that stops further mail.

The link is a relay token of purpose "unsubscribe" (tokens.py), minted with the email. Opening it
records nothing (scanners open links); the POST from the page puts the address on the
suppression list, which eligibility consults before any later email (cycle/ingest.py), and
writes an audit row naming the case, never the address.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from relay_core.models import RelayCase
from relay_core.records.consent import tokens
from relay_core.store import Connection, Store, cases, person_key, utcnow
from relay_core.store.consents import Invitation

PURPOSE = "unsubscribe"
# The opt-out must keep working as long as anyone might read the mail.
TTL = timedelta(days=3650)
REASON = "opted out of the relay invitation mail (invite_only)"


def unsubscribe(store: Store, conn: Connection, invitation: Invitation,
                case: RelayCase, now: datetime | None = None) -> bool:
    """Suppress the case's address for any later mail. False when the address is no longer
    held (already purged): there is nothing left to mail then either."""
    now = now or utcnow()
    tokens.use(conn, invitation.id, now)
    if not case.email:
        store.audit(conn, case.id, "candidate:web", "unsubscribed", at=now,
                    reason="opt-out link used; the address was already deleted")
        return False
    cases.suppress(conn, person_key(case.email), REASON)
    store.audit(conn, case.id, "candidate:web", "unsubscribed", at=now, reason=REASON)
    return True
