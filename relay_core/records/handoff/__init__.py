"""Handing consenting candidates to the agencies they ticked.

    payload.py   the versioned document (Art. 30 manifest) and the field filter
    gate.py      the consent gate: no active consent naming the agency and the field, no transfer
    channels.py  webhook (signed, idempotent), email, redirect; the signature format
    records.py   APPI Art. 29 provision records (≥ 3 years, survive purge)
    deliver.py   the step `run_cycle` calls: handoffs and deletion notices, retries, dead letters

A handoff moves pending → sending → delivered | retrying → … → dead (see consent/records.py,
which creates handoffs and stops them on withdrawal).
"""
