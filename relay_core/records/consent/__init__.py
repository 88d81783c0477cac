"""Relay invitation and consent: signed links, the consent page's logic, consent evidence.

    tokens.py        mint / verify / use the invitation and withdrawal links
    disclosure.py    what the candidate is told (the hashed consent text) and the page renderer
    session.py       the cookie session a link is exchanged for, and its CSRF token
    records.py       relay status, consent / decline / withdrawal / expiry in the store, and
                     what the handoff deliverer asks: pending_handoffs, active_grant,
                     consent_allows, mark_handoff_delivered, pending_deletion_notices
    confirmation.py  the confirmation email with the withdrawal link, queued in the outbox
    requirements.py  relay_problems(config): why the relay may not be switched on

The web routes live in relay_core/web/consent.py.
"""
