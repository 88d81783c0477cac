"""Email: building a message (message.py) and handing it to an outbox or SMTP (transports.py)."""

from relay_core.mail.message import (
    build_message,
    check_interpreter,
    make_message_id,
    message_id_domain,
    validate_address,
)
from relay_core.mail.transports import (
    FileTransport,
    PermanentMailError,
    SmtpTransport,
    Transport,
    make_transport,
)

__all__ = [
    "FileTransport",
    "PermanentMailError",
    "SmtpTransport",
    "Transport",
    "build_message",
    "check_interpreter",
    "make_message_id",
    "make_transport",
    "message_id_domain",
    "validate_address",
]
