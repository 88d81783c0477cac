"""A case's email before it is sent: the same rendering and message building as
`sending.py`, with a placeholder where the personal invitation link goes (the link is minted
only when the email is sent, and nowhere else). The HR console shows these bytes."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from relay_core.config import Config
from relay_core.errors import FatalError
from relay_core.mail.message import build_mail, make_message_id, message_id_domain
from relay_core.rendering.emails import Renderer, build_context, template_names
from relay_core.store import utcnow

PLACEHOLDER_TOKEN = "PERSONAL-LINK-MADE-WHEN-SENT"


def preview_case_mail(config: Config, case: dict[str, Any], *, renderer: Renderer | None = None,
                      now: datetime | None = None) -> bytes:
    """The message this case would get if it were sent now. Raises FatalError or
    TemplateError (the case cannot be mailed: no address any more, a broken template, …)."""
    now = now or utcnow()
    if not case.get("email"):
        raise FatalError("the case holds no email address (skipped, or purged by retention)")
    renderer = renderer or Renderer(config)
    kind = template_names("rejection", mode=config.mail.mode)
    url = f"{config.relay.public_base_url}/r/{PLACEHOLDER_TOKEN}" if case["invite"] else None
    if kind == "invite_only" and url is None:
        raise FatalError("invite-only mode, and this case carries no invitation: no email")
    expires = (now + timedelta(days=config.relay.invitation_ttl_days)).astimezone(
        config.company.tz).date()
    person = json.loads(case.get("person_json") or "{}")
    event = json.loads(case.get("event_json") or "{}")
    context = build_context(
        config, display_name=person.get("full_name") or "", job_title=case["job_title"],
        last_name=person.get("last_name", ""), first_name=person.get("first_name", ""),
        stage=event.get("stage", ""), invitation_url=url,
        invitation_expires=expires if url else None, language=case["language"],
        unsubscribe_url=(f"{config.relay.public_base_url}/u/{PLACEHOLDER_TOKEN}"
                         if kind == "invite_only" else None))
    rendered = renderer.render(kind, case["language"], context)
    message_id = make_message_id(f"{case['source']}:{case['application_id']}", kind,
                                 message_id_domain(config))
    return build_mail(config, to_addr=case["email"],
                      to_name=context["candidate"]["display_name"], subject=rendered.subject,
                      text=rendered.text, html=rendered.html, message_id=message_id,
                      date=now).data
