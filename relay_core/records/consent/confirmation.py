"""The confirmation email a consent sends: which agencies, and the withdrawal link.

It is queued in the outbox in the consent's own transaction, so a recorded consent always has
its confirmation on the way; `deliver_outbox` in the pipeline sends it with the next cycle.
Rendering and serialising the message is most of a consent POST's work, so the page builds it
first (`prepare_confirmation`, no store access) and only the insert (`queue_prepared`) runs
while the transaction holds the write lock.
"""

from __future__ import annotations

from datetime import datetime

from relay_core.config import Config
from relay_core.mail.message import build_mail, make_message_id, message_id_domain
from relay_core.models import Person, RelayCase
from relay_core.rendering.emails import Renderer, build_context
from relay_core.store import Connection, consents
from relay_core.store.outbox import QueuedMail


def prepare_confirmation(config: Config, renderer: Renderer, case: RelayCase,
                         agency_names: list[str], withdraw_url: str, now: datetime
                         ) -> QueuedMail | None:
    """The confirmation as bytes ready for the outbox; None when the case has no address."""
    if not case.email:
        return None
    person = case.person or Person()
    context = build_context(
        config, display_name=person.full_name, last_name=person.last_name,
        first_name=person.first_name, job_title=case.job_title or "",
        stage="", invitation_url=None, invitation_expires=None, language=case.language,
        withdraw_url=withdraw_url, agencies=agency_names, source=case.source)
    rendered = renderer.render("confirmation", case.language, context)
    message_id = make_message_id(case.case_key, "confirmation",
                                 message_id_domain(config))
    mail = build_mail(config, to_addr=case.email, to_name=context["candidate"]["display_name"],
                      subject=rendered.subject, text=rendered.text, html=rendered.html,
                      message_id=message_id, date=now, language=rendered.language)
    return QueuedMail(case.id, message_id, mail.recipient, mail.data)


def queue_prepared(conn: Connection, mail: QueuedMail, now: datetime) -> None:
    consents.queue_confirmation_mail(conn, case_id=mail.case_id, message_id=mail.message_id,
                                     recipient=mail.recipient, message=mail.message, now=now)


def queue_confirmation(conn: Connection, config: Config, renderer: Renderer,
                       case: RelayCase, agency_names: list[str], withdraw_url: str,
                       now: datetime) -> bool:
    """Put the confirmation in the outbox; False when the case has no address any more."""
    mail = prepare_confirmation(config, renderer, case, agency_names, withdraw_url, now)
    if mail is None:
        return False
    queue_prepared(conn, mail, now)
    return True
