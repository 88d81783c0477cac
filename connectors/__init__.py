"""The ATS connectors: one module per vendor, each translating its ATS into the core's
`RejectionEvent` through the contract in `relay_core.contract`.

Imported as `relay_core.connectors.<vendor>` (see relay_core/connectors/__init__.py), and only
when a configured source names the vendor: the registry is `relay_core.contract.registry`.
"""
