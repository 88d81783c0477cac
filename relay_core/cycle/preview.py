"""A case's email before it is sent: the same rendering and message building as
`sending.py`, with a placeholder where the personal invitation link goes (the link is minted
only when the email is sent, and nowhere else). The HR console shows these bytes."""

from __future__ import annotations

from datetime import datetime

from relay_core.config import Config
from relay_core.cycle.building import build_case_mail
from relay_core.cycle.sending import invitation_expiry
from relay_core.errors import FatalError
from relay_core.mail.message import make_message_id, message_id_domain
from relay_core.models import RelayCase
from relay_core.rendering.emails import Renderer, template_names
from relay_core.store import utcnow

PLACEHOLDER_TOKEN = "PERSONAL-LINK-MADE-WHEN-SENT"


def preview_case_mail(config: Config, case: RelayCase, *, renderer: Renderer | None = None,
                      now: datetime | None = None) -> bytes:
    """The message this case would get if it were sent now. Raises FatalError or
    TemplateError (the case cannot be mailed: no address any more, a broken template, …)."""
    now = now or utcnow()
    if not case.email:
        raise FatalError("the case holds no email address (skipped, or purged by retention)")
    kind = template_names("rejection", mode=config.mail.mode)
    url = f"{config.relay.public_base_url}/r/{PLACEHOLDER_TOKEN}" if case.invite else None
    if kind == "invite_only" and url is None:
        raise FatalError("invite-only mode, and this case carries no invitation: no email")
    message_id = make_message_id(case.case_key, kind, message_id_domain(config))
    stop = (f"{config.relay.public_base_url}/u/{PLACEHOLDER_TOKEN}" if kind == "invite_only"
            else None)
    return build_case_mail(config, renderer or Renderer(config), case, kind, url,
                           invitation_expiry(config, now) if url else None, message_id,
                           now, stop).data
